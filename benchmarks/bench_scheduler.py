"""The native engine's scheduler on the tiny checkpoint (CPU): batching, a newcomer's wait, shared prefixes.

1. Aggregate decode throughput: the same 8 requests one at a time, then all 8 at once (batched decoding).
   Target: 8 at once at least 3x the tokens per second of one at a time. Greedy and with the reference
   chat() sampling (top_p 0.8, top_k 50, repetition penalty 1.005), each with a fixed answer length.
2. Time to first token of a new request while 7 others decode, against a request of the same size on an idle
   engine (neither shares a prefix with anything cached): its prefill is interleaved with their decode steps.
3. Composer-like calls sharing an article: one instruction with a ~2000-token article in write mode, then
   calls that each ask something else about it (the composer's caption and selection steps, with an
   assistant prefill and a stop string); printed: prompt tokens, cached tokens and TTFT per call.

The machine may be shared, so parts 1 and 2 run `--runs` times and print the best figures (contention only
ever adds time). `--threads` sets torch's intra-op threads (on a small shared machine, 1 is steadier).
Run: .venv/bin/python benchmarks/bench_scheduler.py [--runs N] [--tokens N] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request, StreamItem
from ixc_app.engines.native.engine import NativeEngine
from ixc_app.engines.native.tiny import write_tiny_checkpoint
from ixc_app.ixc.prompt import Turn
from ixc_app.ixc.template import WRITE_META
from ixc_app.media import load_rgb

REAL_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "data" / "internlm2" / "tokenizer.model"
QUESTIONS = [
    "Write a poem about the sea.",
    "List three colours.",
    "Describe a cat sleeping on a red sofa.",
    "What is the history of tea?",
    "Tell me a story about a fox.",
    "Explain the city skyline at night.",
    "How do you ride a bicycle along the beach?",
    "Write an introduction for an article.",
]
SAMPLING = GenerationParams(seed=0)
GREEDY = GenerationParams(do_sample=False)


def run_all(engine: NativeEngine, requests: list[Request]) -> tuple[list[Finished], float]:
    """Run the requests at once; their Finished items and the wall time."""
    results: list[Finished | None] = [None] * len(requests)

    def run(i: int) -> None:
        results[i] = last(list(engine.stream(requests[i])))

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None], time.perf_counter() - started


def last(items: list[StreamItem]) -> Finished:
    finished = items[-1]
    assert isinstance(finished, Finished)
    return finished


def fixed_length(engine: NativeEngine, params: GenerationParams, tokens: int) -> list[Request]:
    """The 8 requests, each with the seed (or prompt) that decodes `tokens` tokens without a stop token."""
    requests = []
    for n, question in enumerate(QUESTIONS):
        for attempt in range(50):
            p = dataclasses.replace(params, max_new_tokens=tokens, seed=n * 100 + attempt)
            text = question if params.do_sample else f"{question} {attempt}"
            request = Request(turns=(Turn("user", text),), params=p)
            if last(list(engine.stream(request))).generated_tokens == tokens:
                requests.append(request)
                break
    return requests


def throughput(engine: NativeEngine, runs: int, tokens: int) -> None:
    print(f"1. aggregate decode throughput, 8 requests of {tokens} tokens")
    for name, params in (("greedy", GREEDY), ("sampling", SAMPLING)):
        requests = fixed_length(engine, params, tokens)
        total = sum(r.params.max_new_tokens for r in requests)
        alone, together = [], []
        for _ in range(runs):
            started = time.perf_counter()
            for request in requests:
                last(list(engine.stream(request)))
            alone.append(total / (time.perf_counter() - started))
            together.append(total / run_all(engine, requests)[1])
        print(
            f"   {name:8}  one at a time {max(alone):7.1f} tokens/s   8 at once {max(together):7.1f} tokens/s"
            f"   ratio {max(together) / max(alone):.2f} (target >= 3)"
        )


def decode_until_stopped(
    engine: NativeEngine, request: Request, stop: threading.Event, barrier: threading.Barrier
) -> None:
    """Stream `request` until `stop`, meeting the others at `barrier` once it decodes."""
    waited = False
    for item in engine.stream(request, stop):
        if isinstance(item, Delta) and not waited:
            waited = True
            arrive(barrier)


def arrive(barrier: threading.Barrier) -> None:
    """Wait for the others to decode; one that ended before its first token breaks the wait, not the run."""
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=60)


def newcomer_ttft(engine: NativeEngine, runs: int) -> None:
    article = " ".join(f"word{i % 97}" for i in range(600))
    idle, busy = [], []
    for run in range(runs):
        alone = Request(turns=(Turn("user", f"Idle {run}: {article}\nSummarise this."),), params=GREEDY)
        idle.append(last(list(engine.stream(alone))).time_to_first_token_s)
        barrier, stop = threading.Barrier(8), threading.Event()
        long_answer = GenerationParams(do_sample=False, max_new_tokens=2000)
        others = [Request(turns=(Turn("user", f"{q} {run}"),), params=long_answer) for q in QUESTIONS[:7]]
        threads = [
            threading.Thread(target=decode_until_stopped, args=(engine, r, stop, barrier)) for r in others
        ]
        for thread in threads:
            thread.start()
        arrive(barrier)
        newcomer = Request(turns=(Turn("user", f"Busy {run}: {article}\nSummarise this."),), params=GREEDY)
        finished = last(list(engine.stream(newcomer)))
        busy.append(finished.time_to_first_token_s)
        stop.set()
        for thread in threads:
            thread.join()
    print(f"\n2. time to first token of a {finished.prompt_tokens}-token request")
    print(f"   on an idle engine {min(idle):.3f} s   while 7 others decode {min(busy):.3f} s")


def composer(engine: NativeEngine) -> None:
    sentence = "春天来了，公园里的花都开了，孩子们在草地上放风筝。"
    article = "".join(f"<Seg{i}> {sentence * 6}\n" for i in range(16))
    steps = [("", "根据上述文章，选择适合插入图像的行", "适合插入图像的行是")]
    for k in range(0, 12, 2):
        past = f'现在<Seg{k}>后插入图像对应的标题是"春天"， '
        steps.append((past, f"给出适合在<Seg{k + 1}>后插入的图像对应的标题。", '标题是"'))
    print("\n3. composer-like calls over one article (write mode, prefill and stop string)")
    print("   call  prompt tokens  cached tokens  TTFT s")
    params = GenerationParams(max_new_tokens=16, top_k=40)
    for n, (past, ask, prefill) in enumerate(steps):
        text = f'给定文章"{article}" {past}{ask}'
        request = Request(
            turns=(Turn("user", text),),
            params=params,
            mode="write",
            prefill=prefill,
            stop=('"',),
            meta_instruction=WRITE_META,
        )
        finished = last(list(engine.stream(request)))
        tokens = f"{finished.prompt_tokens:>13}  {finished.cached_tokens:>13}"
        print(f"   {n + 1:>4}  {tokens}  {finished.time_to_first_token_s:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = REAL_TOKENIZER if REAL_TOKENIZER.is_file() else None
        checkpoint = write_tiny_checkpoint(Path(tmp) / "tiny", tokenizer)
        engine = NativeEngine.from_pretrained(
            checkpoint,
            read_image=load_rgb,
            cache_budget_bytes=4 * 1024**3,
            feature_cache_bytes=1024**3,
            batch_limit=8,
            prefill_chunk=1024,
        )
        kind = "real" if tokenizer else "small trained"
        print(f"tiny checkpoint, CPU ({args.threads} threads), {kind} tokenizer, best of {args.runs} runs\n")
        throughput(engine, args.runs, args.tokens)
        newcomer_ttft(engine, args.runs)
        composer(engine)
        engine.close()


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")
