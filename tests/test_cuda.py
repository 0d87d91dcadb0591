"""The native engine on a CUDA GPU: attention on fused kernels, compiled decode equal to eager, and the same
answers as on the CPU. Marked `cuda`; skipped where no GPU is visible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import native_engine
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import CausalBias

from ixc_app.engines.base import GenerationParams, Request
from ixc_app.engines.native import NativeModel, generate
from ixc_app.engines.native.attention import fused_gqa
from ixc_app.engines.native.config import ModelConfig, VisionConfig
from ixc_app.engines.native.model import task_rows
from ixc_app.engines.native.tiny import random_state
from ixc_app.ixc.prompt import Turn

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
FUSED = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


def gpu_model(dtype: torch.dtype) -> NativeModel:
    """A small model with the real head size (128) and GQA ratio (4:1), on the GPU."""
    config = ModelConfig(
        vocab_size=512,
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bias=False,
        vision=VisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
        plora_rank=16,
        task_lora_ranks={"lora_sft": 8, "lora_dpo": 8, "lora_web": 8},
    )
    model = NativeModel(config)
    model.load_state_dict(random_state(model, 0))
    return model.to("cuda", dtype).eval().requires_grad_(False)


@pytest.fixture(autouse=True)
def no_materialised_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bottom-right causal mask must never be built as a tensor over the cache."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("causal_lower_right was materialised: SDPA fell back from the fused kernels")

    monkeypatch.setattr(CausalBias, "_materialize", refuse)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_prefill_after_a_cache_and_decode_run_on_fused_kernels(dtype: torch.dtype) -> None:
    model = gpu_model(dtype)
    embeds = torch.randn(300, 512, device="cuda", dtype=dtype)
    reference = gpu_model(torch.float32)
    with sdpa_kernel(FUSED):
        cold = model.forward(embeds, None, model.new_cache(301))
        cache = model.new_cache(301)
        model.forward(embeds[:200], None, cache)
        warm = model.forward(embeds[200:], None, cache)
        step = model.decode(torch.tensor([7], device="cuda"), [cache], ())
    exact = reference.forward(embeds.float(), None, reference.new_cache(300))
    tolerance = {"atol": 1e-3, "rtol": 1e-3} if dtype == torch.float32 else {"atol": 0.15, "rtol": 0.05}
    torch.testing.assert_close(warm, cold[200:], **tolerance)
    torch.testing.assert_close(cold, exact, **tolerance)
    assert step.shape == (1, 512) and torch.isfinite(step).all()
    q = torch.randn(1, 4, 100, 128, device="cuda", dtype=dtype)
    kv = torch.randn(1, 1, 300, 128, device="cuda", dtype=dtype)
    if dtype != torch.float32:
        assert fused_gqa(q, kv, kv, True), "FlashAttention should take grouped-query heads in half precision"


def test_compiled_decode_equals_eager() -> None:
    eager, compiled = gpu_model(torch.bfloat16), gpu_model(torch.bfloat16)
    compiled.compile_decode()
    embeds = torch.randn(64, 512, device="cuda", dtype=torch.bfloat16)
    for rows in (3, 5, 2):
        modes = ["base", "write", "web", "base", "write"][:rows]
        caches = {}
        for name, model in (("eager", eager), ("compiled", compiled)):
            caches[name] = [model.new_cache(80) for _ in range(rows)]
            for i, cache in enumerate(caches[name]):
                model.forward(embeds[: 10 + 7 * i], None, cache, modes[i])
        tokens = torch.arange(rows, device="cuda") + 3
        for _ in range(4):
            a = eager.decode(tokens, caches["eager"], task_rows(modes, torch.device("cuda")))
            b = compiled.decode(tokens, caches["compiled"], task_rows(modes, torch.device("cuda")))
            torch.testing.assert_close(b, a, atol=0.05, rtol=0.02)
            tokens = a.argmax(-1)


def test_the_engine_starts_answers_on_the_gpu_from_the_cpu_logits(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[torch.Tensor] = []
    real = generate.choose

    def recording(logits: torch.Tensor, rows: list[generate.Row]) -> torch.Tensor:
        starts.extend(logits[i].float().cpu() for i, row in enumerate(rows) if row.generated == 0)
        return real(logits, rows)

    monkeypatch.setattr(generate, "choose", recording)
    request = Request(
        turns=(Turn("user", "Write a poem about the sea."),),
        params=GenerationParams(max_new_tokens=8, do_sample=False),
    )
    beams = dataclasses.replace(request, params=dataclasses.replace(request.params, num_beams=3))
    for device in ("cpu", "cuda"):
        engine = native_engine(tiny_checkpoint, device=device)
        list(engine.stream(request))
        assert list(engine.stream(beams))[-1].generated_tokens > 0  # type: ignore[union-attr]
        engine.close()
    assert len(starts) == 2  # a beam search chooses its tokens itself
    torch.testing.assert_close(starts[1], starts[0], atol=1e-3, rtol=1e-3)
