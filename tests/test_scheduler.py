"""The native engine's scheduler on the tiny checkpoint: batched decoding gives every request the tokens it
gets alone, prefill is chunked and interleaved with decoding, Stop ends a long prefill within one chunk, and
admission follows the batch limit and the KV budget."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import native_engine
from PIL import Image

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request, StreamItem
from ixc_app.engines.native import NativeModel, generate
from ixc_app.engines.native.engine import NativeEngine
from ixc_app.ixc.prompt import ImageRef, Turn
from ixc_app.ixc.template import build_prompt

GREEDY = GenerationParams(max_new_tokens=24, do_sample=False)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> NativeModel:
    return NativeModel.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    path = tmp_path_factory.mktemp("scheduler") / "noise.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    return ImageRef(key="scheduler-noise", path=str(path), width=400, height=300)


def text_of(items: list[StreamItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, Delta))


class Recorder:
    """Wraps the model's forward (prefill chunks) and decode (batched steps) to log the rows of each pass."""

    def __init__(self, model: NativeModel, monkeypatch: pytest.MonkeyPatch) -> None:
        self.passes: list[tuple[str, int]] = []
        forward, decode = model.forward, model.decode

        def recording_forward(embeds: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
            self.passes.append(("prefill", embeds.shape[0]))
            return forward(embeds, *args, **kwargs)

        def recording_decode(tokens: torch.Tensor, *args: object) -> torch.Tensor:
            self.passes.append(("decode", tokens.shape[0]))
            return decode(tokens, *args)

        monkeypatch.setattr(model, "forward", recording_forward)
        monkeypatch.setattr(model, "decode", recording_decode)

    @property
    def batch_sizes(self) -> list[int]:
        return [rows for kind, rows in self.passes if kind == "decode"]


def consume(
    engine: NativeEngine, request: Request, out: list[StreamItem], **kwargs: object
) -> threading.Thread:
    def run() -> None:
        cancel = kwargs.get("cancel")
        for item in engine.stream(request, cancel):  # type: ignore[arg-type]
            out.append(item)
            hook = kwargs.get("on_item")
            if hook is not None:
                hook(out)  # type: ignore[operator]

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_batched_decoding_gives_each_request_its_tokens_alone(
    model: NativeModel, image: ImageRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy requests of different lengths, with no, one or two images, in one batch; one joins while the
    others decode and one is cancelled mid-batch."""
    path = tmp_path / "other.png"
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (200, 500, 3), dtype=np.uint8)).save(path)
    other = ImageRef(key="scheduler-other", path=str(path), width=500, height=200)
    requests = [
        Request(turns=(Turn("user", "Write a poem about the sea."),), params=GREEDY),
        Request(
            turns=(Turn("user", "Describe this.", (image,)),),
            params=dataclasses.replace(GREEDY, max_new_tokens=30),
        ),
        Request(turns=(Turn("user", "Compare them.", (image, other)),), params=GREEDY),
        Request(turns=(Turn("user", "Tell me a long story about a fox."),), params=GREEDY, mode="write"),
    ]
    joiner = Request(
        turns=(Turn("user", "What is tea?"),), params=dataclasses.replace(GREEDY, max_new_tokens=12)
    )
    alone = [text_of(list(native_engine(model).stream(r))) for r in [*requests, joiner]]

    recorder = Recorder(model, monkeypatch)
    engine = native_engine(model)
    outs: list[list[StreamItem]] = [[] for _ in range(5)]
    cancel = threading.Event()
    joined = threading.Event()
    threads: list[threading.Thread] = []

    def cancel_after_two(items: list[StreamItem]) -> None:
        if len(items) == 2:
            cancel.set()

    def join_after_three(items: list[StreamItem]) -> None:
        if len(items) == 3 and not joined.is_set():
            joined.set()
            threads.append(consume(engine, joiner, outs[4]))

    hooks = [join_after_three, None, None, cancel_after_two]
    threads += [
        consume(engine, r, outs[i], on_item=hooks[i], cancel=cancel if i == 3 else None)
        for i, r in enumerate(requests)
    ]
    for thread in threads[:4]:
        thread.join(timeout=120)
    assert joined.wait(timeout=10)
    threads[-1].join(timeout=120)

    for i in (0, 1, 2, 4):
        assert isinstance(outs[i][-1], Finished) and outs[i][-1].finish_reason == "length"
        assert text_of(outs[i]) == alone[i]
    assert outs[3][-1].finish_reason == "cancelled"  # type: ignore[union-attr]
    assert alone[3].startswith(text_of(outs[3])) and len(text_of(outs[3])) < len(alone[3])
    sizes = recorder.batch_sizes
    assert max(sizes) >= 4, f"the requests never decoded together: {sizes}"
    prefills = [i for i, (kind, _) in enumerate(recorder.passes) if kind == "prefill"]
    assert len(prefills) == 6  # the two-image prompt takes two chunks
    assert ("decode", 1) not in recorder.passes[prefills[-1] - 1 : prefills[-1] + 2], "the joiner waited"


def test_stop_during_a_long_prefill_returns_within_one_chunk(model: NativeModel) -> None:
    engine = native_engine(model, prefill_chunk=64)
    long_text = " ".join(f"word{i % 97}" for i in range(1500))
    request = Request(turns=(Turn("user", long_text),), params=GREEDY)
    cancel = threading.Event()
    out: list[StreamItem] = []
    worker = consume(engine, request, out, cancel=cancel)
    deadline = time.monotonic() + 60
    while engine.prefill_chunks_run < 3:
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.0005)
    cancel.set()
    at_stop = engine.prefill_chunks_run
    worker.join(timeout=60)
    finished = out[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == "cancelled"
    assert finished.generated_tokens == 0 and finished.prompt_tokens > 20 * 64
    assert engine.prefill_chunks_run - at_stop <= 1
    assert engine.steps_run == engine.prefill_chunks_run


def test_a_long_prefill_is_chunked_between_the_decode_steps_of_others(
    model: NativeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(model, monkeypatch)
    engine = native_engine(model, prefill_chunk=128)
    running: list[StreamItem] = []
    started = threading.Event()
    worker = consume(
        engine,
        Request(turns=(Turn("user", "Hi"),), params=dataclasses.replace(GREEDY, max_new_tokens=200)),
        running,
        on_item=lambda items: started.set(),
    )
    assert started.wait(timeout=60)
    long_text = " ".join(f"word{i % 97}" for i in range(700))
    newcomer = list(engine.stream(Request(turns=(Turn("user", long_text),), params=GREEDY)))
    worker.join(timeout=120)
    assert isinstance(newcomer[-1], Finished) and newcomer[-1].prompt_tokens > 5 * 128
    chunks = [i for i, (kind, rows) in enumerate(recorder.passes) if kind == "prefill" and rows == 128]
    assert len(chunks) >= 5
    between = [recorder.passes[a + 1 : b] for a, b in itertools.pairwise(chunks)]
    assert all(("decode", 1) in passes for passes in between), "the running answer waited for the prefill"
    assert text_of(running) == text_of(
        list(
            native_engine(model).stream(
                Request(turns=(Turn("user", "Hi"),), params=dataclasses.replace(GREEDY, max_new_tokens=200))
            )
        )
    )


@pytest.mark.parametrize("limit", ["batch", "budget"])
def test_admission_follows_the_batch_limit_and_the_kv_budget(
    model: NativeModel, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    questions = ["Write a poem.", "Name a colour.", "Describe a cat.", "What is rain?", "Count to five."]
    requests = [Request(turns=(Turn("user", q),), params=GREEDY) for q in questions]
    alone = [text_of(list(native_engine(model).stream(r))) for r in requests]
    recorder = Recorder(model, monkeypatch)
    needs = [
        (build_prompt(r.turns, model.tokenizer).num_tokens + GREEDY.max_new_tokens)
        * model.kv_bytes_per_position()
        for r in requests
    ]
    assert 3 * min(needs) > 2 * max(needs)
    options = {"batch_limit": 2} if limit == "batch" else {"cache_budget_bytes": 2 * max(needs)}
    engine = native_engine(model, **options)
    outs: list[list[StreamItem]] = [[] for _ in requests]
    threads = [consume(engine, r, outs[i]) for i, r in enumerate(requests)]
    for thread in threads:
        thread.join(timeout=120)
    assert [text_of(o) for o in outs] == alone
    assert max(recorder.batch_sizes) == 2


def test_special_pieces_never_show_in_an_answer(model: NativeModel, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = model.tokenizer.token_id("[UNUSED_TOKEN_141]")
    real = generate.choose

    def plugin_first(logits: torch.Tensor, rows: list[generate.Row]) -> torch.Tensor:
        tokens = real(logits, rows)
        return torch.where(torch.tensor([row.generated == 0 for row in rows]), plugin, tokens)

    request = Request(turns=(Turn("user", "Hi"),), params=dataclasses.replace(GREEDY, max_new_tokens=4))
    expected = text_of(list(native_engine(model).stream(request)))
    monkeypatch.setattr(generate, "choose", plugin_first)
    items = list(native_engine(model).stream(request))
    assert "UNUSED" not in text_of(items)
    assert items[-1].generated_tokens == 4  # type: ignore[union-attr]
    assert text_of(items) != expected
