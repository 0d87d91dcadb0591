"""The native engine on the tiny checkpoint (CPU): what KV and feature reuse buy a conversation; decode speed.

A conversation adds one 800x600 image per turn for five turns, then asks a sixth, text-only question, so turn
6 holds 5 images. Every turn is a stateless request with the whole history, as every caller sends it. For
each turn the time to first token is printed, and the headline ratio TTFT(turn 6) / TTFT(turn 1) (target
<= 0.1), in three set-ups: prefix cache on (KV of prompt prefixes kept by content, features cached by image),
prefix cache off (every turn prefills the whole transcript; features still cached), and nothing kept (every
turn re-encodes every image and prefills everything, as the official demo does). A variant whose sixth turn
brings a sixth image shows the cost of a new image late in a long conversation: in this toy model (2 layers,
width 64) attention over the cached positions is most of the work, so that cost grows with the context.

Reference behaviour to read the figures with: a lone image goes first at hd_num 24, while several images use
`Image{n} <ImageHere>; ` at hd_num 6, so turn 2 shares only BOS with turn 1 and prefills everything again (an
800x600 image has the same 2x2 grid at 24 and 6 crops, but it is encoded again: features are keyed by crop
budget). From turn 3 on only the new answer, question and image are prefilled.

The tiny checkpoint is written with the real tokenizer when ../shared holds it, else with its own small one.
The machine may be shared, so each set-up runs `--runs` times and the fastest time of each turn is printed
(contention only ever adds time).
Run: .venv/bin/python benchmarks/bench_native.py [--runs N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request
from ixc_app.engines.native.engine import NativeEngine
from ixc_app.engines.native.tiny import write_tiny_checkpoint
from ixc_app.ixc.prompt import ImageRef, Turn
from ixc_app.media import load_rgb

REAL_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "data" / "internlm2" / "tokenizer.model"
IMAGE_SIZE = (800, 600)
TURNS = 6
CONTEXT = 16384
ANSWER = GenerationParams(max_new_tokens=16, do_sample=False)
KV_BUDGET = 4 * 1024**3
FEATURE_BUDGET = 1024**3
SCHEDULER = {"batch_limit": 8, "prefill_chunk": 1024}
"""The app's default engine budgets and scheduler sizes (`Settings`)."""


def make_images(folder: Path) -> list[ImageRef]:
    refs = []
    for seed in range(TURNS):
        width, height = IMAGE_SIZE
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"image{seed}.png"
        Image.fromarray(pixels).save(path)
        refs.append(ImageRef(key=f"bench-{seed}", path=str(path), width=width, height=height))
    return refs


def conversation(engine: NativeEngine, images: list[ImageRef]) -> list[Finished]:
    """Six turns, turn n bringing `images[n]` if there is one; answers go into the history."""
    history: tuple[Turn, ...] = ()
    results = []
    for turn in range(TURNS):
        attached = (images[turn],) if turn < len(images) else ()
        history = (*history, Turn("user", f"Question {turn + 1}: what is new here?", attached))
        items = list(engine.stream(Request(turns=history, params=ANSWER)))
        finished = items[-1]
        assert isinstance(finished, Finished)
        results.append(finished)
        history = (*history, Turn("assistant", "".join(i.text for i in items if isinstance(i, Delta))))
    return results


def decode_rate(engine: NativeEngine, tokens: int) -> float:
    """Tokens per second after each answer's first, with the reference chat() sampling settings.

    The random model may draw a stop token early, so answers are requested until `tokens` were decoded.
    """
    decoded, seconds, seed = 0, 0.0, 0
    while decoded < tokens:
        params = GenerationParams(max_new_tokens=tokens - decoded + 1, seed=seed)
        request = Request(turns=(Turn("user", "Write a long story about the sea."),), params=params)
        finished = list(engine.stream(request))[-1]
        assert isinstance(finished, Finished)
        decoded += finished.generated_tokens - 1
        seconds += finished.total_s - finished.time_to_first_token_s
        seed += 1
    return decoded / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizer = REAL_TOKENIZER if REAL_TOKENIZER.is_file() else None
        checkpoint = write_tiny_checkpoint(folder / "tiny", tokenizer)
        images = make_images(folder)
        budgets = {"cache_budget_bytes": KV_BUDGET, "feature_cache_bytes": FEATURE_BUDGET}
        engine = NativeEngine.from_pretrained(
            checkpoint, read_image=load_rgb, context_length=CONTEXT, **budgets, **SCHEDULER
        )
        print(
            f"tiny checkpoint, CPU, {'real' if tokenizer else 'small trained'} tokenizer, "
            f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} images, {ANSWER.max_new_tokens}-token answers, "
            f"fastest of {args.runs} runs"
        )
        conversation(engine, images)  # warm-up: first-call costs of the kernels and allocator

        five = images[: TURNS - 1]
        setups: dict[str, tuple[list[ImageRef], dict[str, int]]] = {
            "prefix cache on": (five, {}),
            "prefix cache off": (five, {"cache_budget_bytes": 0}),
            "nothing kept": (five, {"cache_budget_bytes": 0, "feature_cache_bytes": 0}),
            "variant, turn 6 brings a sixth image, prefix cache on": (images, {}),
        }
        runs: dict[str, list[list[Finished]]] = {name: [] for name in setups}
        for _ in range(args.runs):  # interleaved, so a burst of load elsewhere hits every set-up alike
            for name, (shown, options) in setups.items():
                options = {**budgets, **options}
                fresh = NativeEngine(
                    engine.model, read_image=load_rgb, context_length=CONTEXT, **options, **SCHEDULER
                )
                runs[name].append(conversation(fresh, shown))
                fresh.close()
        for name, results in runs.items():
            ttft = [min(run[t].time_to_first_token_s for run in results) for t in range(TURNS)]
            print(f"\n{name}:\n  turn  prompt tokens  cached tokens  TTFT s")
            for t, finished in enumerate(results[-1]):
                tokens = f"{finished.prompt_tokens:>13}  {finished.cached_tokens:>13}"
                print(f"  {t + 1:>4}  {tokens}  {ttft[t]:>6.3f}")
            ratios = f"{ttft[-1] / ttft[0]:.2f}  (turn 2 / turn 1 = {ttft[1] / ttft[0]:.2f})"
            print(f"  TTFT turn 6 / turn 1 = {ratios}")

        rates = [decode_rate(engine, args.decode_tokens) for _ in range(args.runs)]
        print(
            f"\ndecode: {max(rates):.1f} tokens/s (fastest; {args.decode_tokens} tokens, "
            "top_p 0.8, top_k 50, repetition penalty 1.005)"
        )
        engine.close()
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")
