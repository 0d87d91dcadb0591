"""The native model at full size on a GPU, with random weights built on the device (nothing is downloaded).

Builds IXC-2.5 at its real sizes (InternLM2-7B with PLoRA and the three task LoRAs, CLIP ViT-L/14-560 and the
projector) in bf16 on the device, then prints:
- prefill tokens/s of a cold chunk, and of a chunk after as many cached positions (the bottom-right causal
  path every follow-up turn takes);
- encoding one 24-crop image (25 views through the vision tower);
- decode tokens/s at batch 1 and 8, each step as the engine runs it (batched forward, sampling, one host
  sync), over caches of `--context` positions;
- the ratio of the batch-1 decode step to its memory-bandwidth floor: the bytes of the weights a text token
  reads divided by the device's measured copy bandwidth (1.0 would be perfect).
It should take well under 5 minutes on one modern GPU. `--tiny` (what runs where no GPU is visible) makes
the same measurements on the CPU with the tiny checkpoint's sizes, so CI keeps the script alive.

`--turbomind` then measures LMDeploy's TurboMind engine the way the app runs it (`--engine turbomind`: the
managed api_server from the LMDeploy environment, on the real checkpoint at `--model`, through the remote
engine): prefill tokens/s of a cold `--prefill`-token text prompt (prompt tokens over the time to the first
token; TurboMind runs without prefix caching, so there is no after-cache figure), and decode tokens/s at
batch 1 and 8 (streams at once, each asked for `--steps` tokens after a `--context`-token prompt; the tokens
each stream produced after its first, over the time from the first first token to the last last one). The
two engines' figures are then side by side in one run, on one GPU. Where TurboMind cannot run (no GPU, no
LMDeploy environment, no checkpoint) it says so and exits with 1 before measuring anything.
Run: .venv/bin/python benchmarks/bench_gpu.py [--tiny] [--compile] [--steps N] [--context N] [--prefill N]
     [--crops N] [--turbomind [--model PATH] [--lmdeploy-python PATH]]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ixc_app import bootstrap
from ixc_app.config import DEFAULT_MODEL, Settings, parse_settings
from ixc_app.engines.base import Delta, Engine, Finished, GenerationParams, Request
from ixc_app.engines.native.config import ModelConfig, RopeScaling, VisionConfig
from ixc_app.engines.native.generate import Row, choose
from ixc_app.engines.native.model import NativeModel
from ixc_app.ixc.prompt import Turn

FULL = ModelConfig(
    vocab_size=92544,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=24576,
    rope_theta=1000000.0,
    rope_scaling=RopeScaling("dynamic", 2.0),
    rms_norm_eps=1e-5,
    bias=False,
    vision=VisionConfig(),
    plora_rank=256,
    task_lora_ranks=dict.fromkeys(("lora_sft", "lora_dpo", "lora_web"), 256),
)
"""internlm-xcomposer2d5-7b (spec section 1); the task LoRA ranks are assumed (they only cost memory here)."""
TINY = ModelConfig(
    vocab_size=92544,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rope_theta=1000000.0,
    rope_scaling=RopeScaling("dynamic", 2.0),
    rms_norm_eps=1e-5,
    bias=False,
    vision=VisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    plora_rank=256,
    task_lora_ranks=dict.fromkeys(("lora_sft", "lora_dpo", "lora_web"), 8),
)
"""The tiny checkpoint's sizes (`tiny.DEFAULT_SIZES`) with the real vocabulary."""


def build(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> NativeModel:
    """The model allocated on `device` and filled with random weights there, at scales that keep it finite."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = NativeModel(config)
    finally:
        torch.set_default_dtype(default)
    model = model.to_empty(device=device)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1 and "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            elif param.dim() == 1 or name.endswith("GN"):
                param.normal_(0.0, 0.1)
            else:
                param.normal_(0.0, 1.0 / math.sqrt(math.prod(param.shape[1:])))
    return model.eval().requires_grad_(False)


def timed(device: torch.device, work: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` runs of `work`, in seconds, after one warm-up run."""
    work()
    best = math.inf
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Bytes per second a device-to-device copy moves (each byte read once and written once)."""
    source = torch.empty(nbytes, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    return 2 * nbytes / timed(device, lambda: target.copy_(source), repeat=5)


def decode_weight_bytes(model: NativeModel) -> int:
    """What a batch-1 text decode step in base mode reads: the LLM's linears and norms and the output head
    (PLoRA acts on image rows only; task LoRAs, the vision side and the embedding table are not read)."""
    return sum(
        p.numel() * p.element_size()
        for n, p in model.named_parameters()
        if n.startswith(("model.layers.", "model.norm", "output")) and "Plora_" not in n and ".lora_" not in n
    )


def prefill_rates(model: NativeModel, device: torch.device, count: int) -> tuple[float, float]:
    embeds = torch.randn(2 * count, model.config.hidden_size, device=device, dtype=model.dtype)

    def cold() -> None:
        model.forward(embeds[:count], None, model.new_cache(count), last_only=True)

    cache = model.new_cache(2 * count)
    model.forward(embeds[:count], None, cache)

    def after_cache() -> None:
        cache.truncate(count)
        model.forward(embeds[count:], None, cache, last_only=True)

    return count / timed(device, cold), count / timed(device, after_cache)


def decode_rate(model: NativeModel, device: torch.device, rows: int, context: int, steps: int) -> float:
    """Tokens per second of `steps` batched decode steps as the scheduler runs them."""
    caches = model.new_caches(context + steps + 8, rows)
    prompt = torch.randn(context, model.config.hidden_size, device=device, dtype=model.dtype)
    for cache in caches:
        model.forward(prompt, None, cache, last_only=True)
    params = GenerationParams(do_sample=False)
    state = [Row.start(params, [], model.config.vocab_size, device) for _ in range(rows)]
    tokens = torch.ones(rows, dtype=torch.long, device=device)

    def run() -> None:
        nonlocal tokens
        for cache in caches:
            cache.truncate(context)
        for _ in range(steps):
            tokens = torch.tensor(choose(model.decode(tokens, caches, ()), state).tolist(), device=device)

    return rows * steps / timed(device, run, repeat=2)


def turbomind_settings(args: argparse.Namespace, data_dir: Path) -> Settings:
    argv = ["--engine", "turbomind", "--model", args.model, "--data-dir", str(data_dir)]
    argv += ["--lmdeploy-python", args.lmdeploy_python] if args.lmdeploy_python else []
    return parse_settings([*argv, "--context-budget", str(max(args.prefill, args.context) + args.steps + 64)])


def turbomind_blocker(settings: Settings) -> str:
    """Why TurboMind cannot run here ('' when it can): the same checks as `--engine auto`."""
    engine, reason = bootstrap.choose_engine(
        settings, torch.cuda.is_available(), bootstrap.lmdeploy_python(settings)
    )
    return "" if engine == "turbomind" else reason


def text_of(engine: Engine, tokens: int, salt: int) -> str:
    """A text prompt of about `tokens` tokens, different for each `salt` (no prefix shared across prompts)."""
    words = f"Sample {salt}: the quick brown fox jumps over the lazy dog near river number {salt}. "
    text = words
    while len(engine.tokenizer.encode(text, bos=False)) < tokens:
        text += words
    return text


def ask(engine: Engine, text: str, max_new_tokens: int) -> tuple[float, float, int, int]:
    """(first token time, last token time, prompt tokens, tokens generated) of one streamed answer."""
    request = Request(
        turns=(Turn("user", text),),
        params=GenerationParams(max_new_tokens=max_new_tokens, do_sample=False),
        hd_num_single=1,
        hd_num_multi=1,
    )
    first = last = 0.0
    finished: Finished | None = None
    for item in engine.stream(request):
        if isinstance(item, Delta):
            last = time.perf_counter()
            first = first or last
        else:
            finished = item
    assert finished is not None
    return first, last, finished.prompt_tokens, finished.generated_tokens


def server_prefill_rate(engine: Engine, count: int) -> float:
    best = 0.0
    for salt in range(4):  # the first is a warm-up
        started = time.perf_counter()
        first, _, prompt_tokens, _ = ask(engine, text_of(engine, count, salt), 1)
        if salt:
            best = max(best, prompt_tokens / (first - started))
    return best


def server_decode_rate(engine: Engine, rows: int, context: int, steps: int) -> float:
    results: list[tuple[float, float, int, int]] = []

    def one(salt: int) -> None:
        results.append(ask(engine, "Write a long story. " + text_of(engine, context, 100 + salt), steps))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(rows)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    start, end = min(r[0] for r in results), max(r[1] for r in results)
    return sum(max(r[3] - 1, 0) for r in results) / (end - start)


def measure_turbomind(settings: Settings, count: int, context: int, steps: int) -> None:
    started = time.perf_counter()
    settings, engine = bootstrap.start_engine(settings)
    try:
        print(f"TurboMind (LMDeploy 0.7.3 api_server, managed) on {settings.model}")
        print(f"started and healthy in {time.perf_counter() - started:.1f} s (log: {settings.data_dir}/logs)")
        rate = server_prefill_rate(engine, count)
        print(f"TurboMind prefill, {count} positions: cold {rate:,.0f} tokens/s (prompt / first token)")
        server_decode_rate(engine, 1, context, 4)  # warm-up
        for rows in (1, 8):
            rate = server_decode_rate(engine, rows, context, steps)
            print(f"TurboMind decode, batch {rows}, {context}-token prompts: {rate:,.1f} tokens/s")
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny sizes on the CPU")
    parser.add_argument("--compile", action="store_true", help="compile the decode step (torch.compile)")
    parser.add_argument("--steps", type=int, default=None, help="decode steps per measurement")
    parser.add_argument("--context", type=int, default=None, help="cached positions per decoded sequence")
    parser.add_argument("--prefill", type=int, default=None, help="positions per prefill chunk")
    parser.add_argument("--crops", type=int, default=24, help="crops of the encoded image (24: a 4x6 grid)")
    parser.add_argument("--turbomind", action="store_true", help="also measure TurboMind (see above)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="--turbomind: the real checkpoint's folder")
    parser.add_argument("--lmdeploy-python", default="", help="--turbomind: LMDeploy 0.7.3's python")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-gpu-")) if args.turbomind else Path()
    if args.turbomind:
        args.prefill, args.context = args.prefill or 4096, args.context or 2048
        args.steps = args.steps or 64
        blocker = turbomind_blocker(turbomind_settings(args, scratch))
        if blocker:
            print(f"TurboMind cannot run here: {blocker}; nothing was measured.")
            sys.exit(1)
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA GPU is visible: running the tiny sizes on the CPU (--tiny); these are not GPU figures")
        args.tiny = True
    device = torch.device("cpu" if args.tiny else "cuda")
    config, dtype = (TINY, torch.float32) if args.tiny else (FULL, torch.bfloat16)
    steps = args.steps or (16 if args.tiny else 64)
    context = args.context or (256 if args.tiny else 2048)
    count = args.prefill or (512 if args.tiny else 4096)

    started = time.perf_counter()
    model = build(config, device, dtype)
    if args.compile:
        model.compile_decode()
    params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{'tiny' if args.tiny else 'full-size'} IXC-2.5, {params / 1e9:.2f}B parameters, {dtype}, {name}")
    print(f"built on the device in {time.perf_counter() - started:.1f} s")

    cold, warm = prefill_rates(model, device, count)
    print(f"prefill, {count} positions: cold {cold:,.0f} tokens/s; after {count} cached {warm:,.0f} tokens/s")
    rows, cols = (4, 6) if args.crops == 24 else (1, args.crops)
    pixels = torch.randn(1, 3, rows * 560, cols * 560, device=device)
    encode = timed(device, lambda: model.encode_image(pixels))
    print(f"one {rows * cols}-crop image ({rows * cols + 1} views) through the vision tower: {encode:.3f} s")

    rates = {rows: decode_rate(model, device, rows, context, steps) for rows in (1, 8)}
    for rows, rate in rates.items():
        print(f"decode, batch {rows}, {context} cached positions each: {rate:,.1f} tokens/s")
    bandwidth = copy_bandwidth(device, (256 if args.tiny else 2048) * 1024**2)
    weights = decode_weight_bytes(model)
    floor = weights / bandwidth
    step = 1 / rates[1]
    print(
        f"batch-1 step {step * 1000:.2f} ms; floor {floor * 1000:.2f} ms ({weights / 1e9:.2f} GB of weights "
        f"at {bandwidth / 1e9:.0f} GB/s copy bandwidth); ratio {step / floor:.2f}"
    )
    if args.turbomind:
        measure_turbomind(turbomind_settings(args, scratch), count, context, steps)
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
