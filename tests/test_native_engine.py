"""The native engine on the tiny checkpoint: Engine protocol, stop tokens, cancellation, errors, threads."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import native_engine
from PIL import Image

from ixc_app.engines.base import (
    BadRequest,
    ContextTooLong,
    Delta,
    EngineUnavailable,
    Finished,
    GenerationParams,
    Request,
    StreamItem,
)
from ixc_app.engines.native import NativeModel, generate
from ixc_app.engines.native.engine import NativeEngine
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.ixc import hd
from ixc_app.ixc.prompt import ImageRef, ImageSegment, Turn
from ixc_app.ixc.tokenizer import TURN_END, TURN_START
from ixc_app.media import load_rgb

GREEDY = GenerationParams(max_new_tokens=6, do_sample=False)
QUESTION = (Turn("user", "Write a poem about the sea."),)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> NativeModel:
    return NativeModel.from_pretrained(tiny_checkpoint)


def text_of(items: list[StreamItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, Delta))


def answer(engine: NativeEngine, request: Request) -> tuple[str, Finished]:
    items = list(engine.stream(request))
    assert isinstance(items[-1], Finished)
    assert all(isinstance(i, Delta) for i in items[:-1])
    return text_of(items), items[-1]


def test_capabilities(model: NativeModel) -> None:
    caps = native_engine(model).capabilities
    assert caps.name == "native"
    assert caps.modes == model.supported_modes == frozenset({"base", "write", "web"})
    assert caps.supports_prefill and caps.supports_stop and caps.supports_beam_search and caps.prefix_cache
    assert caps.max_concurrency == 8
    assert native_engine(model, batch_limit=3).capabilities.max_concurrency == 3
    assert caps.context_length == model.config.max_position_embeddings
    assert not caps.is_demo_model
    demo = native_engine(model, context_length=2048, is_demo_model=True).capabilities
    assert (demo.context_length, demo.is_demo_model) == (2048, True)


def test_bad_requests_are_typed_errors_before_any_compute(model: NativeModel, tmp_path: Path) -> None:
    engine = native_engine(model, context_length=1000)
    bad = [
        (Request(turns=QUESTION, mode="poem"), BadRequest, "no 'poem' mode"),  # type: ignore[arg-type]
        (Request(turns=(*QUESTION, Turn("assistant", "Hi"))), BadRequest, "must end with the user"),
        (Request(turns=()), BadRequest, "must end with the user"),
        (
            Request(turns=QUESTION, params=GenerationParams(max_new_tokens=0)),
            BadRequest,
            "at least one token",
        ),
        (
            Request(turns=QUESTION, params=GenerationParams(max_new_tokens=990)),
            ContextTooLong,
            "context of 1000",
        ),
        (Request(turns=QUESTION, params=GenerationParams(num_beams=7)), BadRequest, "between 1 and 6"),
        (Request(turns=QUESTION, params=GenerationParams(num_beams=0)), BadRequest, "between 1 and 6"),
    ]
    image = tmp_path / "big.png"
    Image.new("RGB", (600, 500), "white").save(image)
    big = ImageRef(key="big", path=str(image), width=600, height=500)
    bad.append((Request(turns=(Turn("user", "Hi", (big,)),)), ContextTooLong, "exceeds the model's context"))
    for request, error, message in bad:
        with pytest.raises(error, match=message):
            list(engine.stream(request))
    missing = ImageRef(key="gone", path=str(tmp_path / "gone.png"), width=300, height=300)
    with pytest.raises(BadRequest, match=r"\(gone.png\) cannot be read"):
        list(native_engine(model).stream(Request(turns=(Turn("user", "Hi", (missing,)),))))
    assert engine.steps_run == 0


@pytest.mark.parametrize("piece", ["</s>", TURN_END])
def test_stop_token_ends_the_stream_without_text(
    model: NativeModel, monkeypatch: pytest.MonkeyPatch, piece: str
) -> None:
    engine = native_engine(model)
    params = dataclasses.replace(GREEDY, max_new_tokens=20)
    before_stop, limited = answer(
        engine, Request(turns=QUESTION, params=dataclasses.replace(params, max_new_tokens=3))
    )
    assert limited.finish_reason == "length"
    assert limited.generated_tokens == 3

    stop_id = model.tokenizer.token_id(piece)
    real = generate.choose

    def stop_at_fourth_token(logits: torch.Tensor, rows: list[generate.Row]) -> torch.Tensor:
        tokens = real(logits, rows)
        for i, row in enumerate(rows):
            if row.generated == 3:
                tokens[i] = stop_id
        return tokens

    monkeypatch.setattr(generate, "choose", stop_at_fourth_token)
    steps = engine.steps_run
    text, finished = answer(engine, Request(turns=QUESTION, params=params))
    assert finished.finish_reason == "stop"
    assert finished.generated_tokens == 4
    assert engine.steps_run - steps == 4  # the prefill and three tokens; the stop token is never fed
    assert text == before_stop
    assert piece not in text and TURN_START not in text


def test_cancel_from_the_consumer_stops_within_one_step(model: NativeModel) -> None:
    engine = native_engine(model)
    cancel = threading.Event()
    params = dataclasses.replace(GREEDY, max_new_tokens=60)
    items: list[StreamItem] = []
    for item in engine.stream(Request(turns=QUESTION, params=params), cancel):
        items.append(item)
        if isinstance(item, Delta) and not cancel.is_set():
            cancel.set()
            steps_at_cancel = engine.steps_run
    finished = items[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "cancelled"
    assert engine.steps_run - steps_at_cancel <= 1
    assert finished.generated_tokens < 60


def test_cancel_from_another_thread_stops_within_one_step(model: NativeModel) -> None:
    engine = native_engine(model)
    cancel, first_delta = threading.Event(), threading.Event()
    items: list[StreamItem] = []

    def consume() -> None:
        for item in engine.stream(
            Request(turns=QUESTION, params=dataclasses.replace(GREEDY, max_new_tokens=200)), cancel
        ):
            items.append(item)
            first_delta.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert first_delta.wait(timeout=120)
    cancel.set()
    steps_at_cancel = engine.steps_run
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert isinstance(items[-1], Finished)
    assert items[-1].finish_reason == "cancelled"
    assert engine.steps_run - steps_at_cancel <= 1


def test_cancelled_before_start_and_closed_generators_compute_nothing_more(model: NativeModel) -> None:
    engine = native_engine(model)
    cancel = threading.Event()
    cancel.set()
    items = list(engine.stream(Request(turns=QUESTION, params=GREEDY), cancel))
    assert items == [dataclasses.replace(items[-1], finish_reason="cancelled", generated_tokens=0)]
    assert engine.steps_run == 0

    stream = engine.stream(Request(turns=QUESTION, params=dataclasses.replace(GREEDY, max_new_tokens=200)))
    next(i for i in stream if isinstance(i, Delta))
    stream.close()
    steps = engine.steps_run
    wait_until_idle(engine)
    assert engine.steps_run - steps <= 1
    assert steps < 200


def wait_until_idle(engine: NativeEngine) -> None:
    deadline = time.monotonic() + 60
    while not engine.scheduler.idle:
        assert time.monotonic() < deadline, "the engine kept running a request nobody reads"
        time.sleep(0.001)


def test_concurrent_requests_give_the_sequential_results(model: NativeModel) -> None:
    engine = native_engine(model)
    requests = [
        Request(turns=QUESTION, params=GREEDY),
        Request(turns=(Turn("user", "List three colours."),), params=GREEDY),
        Request(turns=QUESTION, params=dataclasses.replace(GREEDY, do_sample=True, seed=3)),
    ]
    sequential = [answer(native_engine(model), r)[0] for r in requests]
    results: dict[int, str] = {}

    def run(index: int) -> None:
        results[index] = answer(engine, requests[index])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [results.get(i) for i in range(len(requests))] == sequential


def test_the_prefix_cache_is_kept_between_requests_and_close_ends_the_engine(model: NativeModel) -> None:
    engine = native_engine(model)
    answer(engine, Request(turns=QUESTION, params=GREEDY))
    assert len(engine.prefix) > 0 and engine.prefix.nbytes > 0
    engine.close()
    assert len(engine.prefix) == 0
    assert not engine.scheduler.alive
    with pytest.raises(EngineUnavailable, match="shut down"):
        list(engine.stream(Request(turns=QUESTION, params=GREEDY)))


def test_decode_steps_take_no_image_mask_and_prefill_masks_stay_on_the_cpu(
    model: NativeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mask on the device would cost a sync per chunk (its all/any are read on the host)."""
    masks: list[torch.Tensor | None] = []
    decoded: list[int] = []
    real_forward, real_decode = model.forward, model.decode

    def recording(embeds: torch.Tensor, im_mask: torch.Tensor | None, *args: object, **kwargs: object):
        masks.append(im_mask)
        return real_forward(embeds, im_mask, *args, **kwargs)

    def counting(tokens: torch.Tensor, *args: object) -> torch.Tensor:
        decoded.append(tokens.shape[0])
        return real_decode(tokens, *args)

    expected, _ = answer(native_engine(model), Request(turns=QUESTION, params=GREEDY))
    monkeypatch.setattr(model, "forward", recording)
    monkeypatch.setattr(model, "decode", counting)
    text, finished = answer(native_engine(model), Request(turns=QUESTION, params=GREEDY))
    assert text == expected
    assert finished.generated_tokens >= 2
    assert len(masks) == 1 and decoded == [1] * (finished.generated_tokens - 1)
    prefill_mask = masks[0]
    assert prefill_mask is not None and prefill_mask.device.type == "cpu"
    embeds = model.embed_tokens([1, 2, 3])
    without = real_forward(embeds, None, model.new_cache(3))
    assert torch.equal(without, real_forward(embeds, torch.zeros(3, dtype=torch.bool), model.new_cache(3)))


def test_prefill_continues_the_answer_and_counts_for_the_repetition_penalty(
    model: NativeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_at_start: list[list[int]] = []
    real = generate.choose

    def recording(logits: torch.Tensor, rows: list[generate.Row]) -> torch.Tensor:
        if not seen_at_start:
            seen_at_start.append(rows[0].seen.nonzero().flatten().tolist())
        return real(logits, rows)

    monkeypatch.setattr(generate, "choose", recording)
    prefill = "The best picture is"
    engine = native_engine(model)
    text, finished = answer(engine, Request(turns=QUESTION, params=GREEDY, prefill=prefill))
    assert seen_at_start == [sorted(set(model.tokenizer.encode(prefill, bos=False)))]
    assert not text.startswith(prefill)
    plain = engine.stream(Request(turns=QUESTION, params=GREEDY))
    assert finished.prompt_tokens > list(plain)[-1].prompt_tokens


def test_images_are_read_as_the_media_module_reads_uploads(tmp_path: Path) -> None:
    """Transparency lands on white and EXIF orientation is applied, as the user saw the picture."""
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (300, 200), (200, 0, 0, 0)).save(clear)
    rotated = tmp_path / "rotated.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: a 300x200 file is a 200x300 picture
    Image.new("RGB", (300, 200), "blue").save(rotated, exif=exif)
    cases = ((clear, Image.new("RGB", (300, 200), "white")), (rotated, Image.new("RGB", (200, 300), "blue")))
    for path, expected in cases:
        ref = ImageRef(key=path.name, path=str(path), width=expected.width, height=expected.height)
        segment = ImageSegment(image=ref, hd_num=24, grid=(1, 1), num_tokens=841)
        assert torch.equal(image_pixels(segment, load_rgb), hd.hd_transform(expected, 24).pixel_values)
