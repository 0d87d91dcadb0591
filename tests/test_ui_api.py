"""The public `/chat` API, driven by `gradio_client` against the app launched in-process (tiny checkpoint)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_harness import FAST, RunningApp, app_settings, start_app, write_mp4, write_png
from conftest import native_engine
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from ixc_app.engines.base import Delta, EngineCapabilities, EngineUnavailable, Finished, Request, StreamItem
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.ui.identity import format_handle, parse_handle

API_PARAMETERS = [
    "message",
    "files",
    "conversation_id",
    "max_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "seed",
    "hd_num_single",
    "hd_num_multi",
    "image_mode",
    "use_meta",
    "meta_instruction",
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "red": write_png(folder / "red.png", (200, 30, 30)),
        "blue": write_png(folder / "blue.png", (30, 30, 200), size=(80, 120)),
        "clip": write_mp4(folder / "clip.mp4"),
    }


def send(
    client: Client, message: str, files: tuple[Path, ...] = (), conversation: str = "", **settings: Any
) -> list[tuple[str, str]]:
    """Every streamed (answer so far, conversation id); raises `AppError` when the app rejects the call."""
    job = client.submit(
        message,
        [handle_file(str(f)) for f in files],
        conversation,
        api_name="/chat",
        **{**FAST, **settings},
    )
    job.result()
    return [tuple(output) for output in job.outputs()]


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.02)


def settled(read: Callable[[], int], quiet_s: float = 0.5, timeout_s: float = 30.0) -> int:
    """The value once it has stopped changing for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise AssertionError("the value kept changing")
        time.sleep(0.05)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value


def test_chat_the_composer_and_the_transfer_are_the_only_public_endpoints_and_chat_is_typed(
    app: RunningApp,
) -> None:
    info = app.client().view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == {
        "/chat",
        "/compose",
        "/article_edit",
        "/article_export",
        "/conversation_export",
        "/conversation_import",
    }
    assert info["unnamed_endpoints"] == {}
    chat = info["named_endpoints"]["/chat"]
    assert [p["parameter_name"] for p in chat["parameters"]] == API_PARAMETERS
    assert [r["label"] for r in chat["returns"]] == ["answer", "conversation_id"]
    assert {r["python_type"]["type"] for r in chat["returns"]} == {"str"}


def test_multi_turn_with_images_and_a_video(app: RunningApp, media: dict[str, Path]) -> None:
    client = app.client()
    first = send(client, "Compare these two images.", (media["red"], media["blue"]))
    handle = first[-1][1]
    second = send(client, "What happens in this video?", (media["clip"],), handle)
    third = send(client, "Which of the pictures was red?", (), handle)
    assert {h for _, h in first + second + third} == {handle}

    conv = app.store.get(*parse_handle(handle))
    assert conv is not None
    assert [m.role for m in conv.messages] == ["user", "assistant"] * 3
    assert [[item.kind for item in m.media] for m in conv.messages[::2]] == [
        ["image", "image"],
        ["video"],
        [],
    ]
    video = conv.messages[2].media[0]
    assert video.playable and video.strip_key and app.store.media.path(video.strip_key).is_file()
    answers = conv.messages[1::2]
    assert [a.text for a in answers] == [first[-1][0], second[-1][0], third[-1][0]]
    assert all(a.finish in ("stop", "length") and a.error is None for a in answers)
    prompts = [a.stats.prompt_tokens for a in answers]
    assert prompts[0] < prompts[1] < prompts[2], "every turn carries the whole history, images included"
    assert answers[2].stats.cached_tokens > 0, "a follow-up reuses the conversation's engine session"


def test_a_custom_system_prompt_is_kept_with_the_conversation(app: RunningApp) -> None:
    client = app.client()
    _, handle = send(client, "Ahoy?", meta_instruction="You are a pirate.")[-1]
    conv = app.store.get(*parse_handle(handle))
    assert conv is not None and conv.settings.meta_instruction == "You are a pirate."
    _, handle = send(client, "Hello?")[-1]
    conv = app.store.get(*parse_handle(handle))
    assert conv is not None and conv.settings.meta_instruction is None  # the official one


def test_streaming_yields_several_growing_deltas(app: RunningApp) -> None:
    outputs = send(app.client(), "Tell me a story.", (), max_new_tokens=48, seed=7)
    texts = [text for text, _ in outputs if text]
    distinct = list(dict.fromkeys(texts))
    assert len(distinct) >= 3
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(distinct))


def test_cancelling_the_job_stops_the_engine(app: RunningApp, engine: Any) -> None:
    job = app.client().submit("Write a very long essay.", [], "", api_name="/chat", max_new_tokens=3000)
    wait_for(lambda: any(text for text, _ in job.outputs()))
    handle = job.outputs()[-1][1]
    job.cancel()
    steps = settled(lambda: engine.steps_run)
    time.sleep(0.5)
    assert engine.steps_run == steps, "the engine kept decoding after the job was cancelled"
    conv = app.store.get(*parse_handle(handle))
    assert conv is not None and conv.messages[-1].finish == "cancelled"
    assert conv.messages[-1].stats is None or conv.messages[-1].stats.generated_tokens < 3000
    assert conv.messages[-1].text


def test_two_clients_never_see_each_others_conversations(app: RunningApp) -> None:
    alice, bob = app.client(), app.client()
    alice_handle = send(alice, "Alice's secret plan.")[-1][1]
    bob_handle = send(bob, "Bob's question.")[-1][1]
    alice_owner, alice_conv = parse_handle(alice_handle)
    bob_owner, bob_conv = parse_handle(bob_handle)
    assert alice_owner != bob_owner

    with pytest.raises(AppError, match="not found"):
        send(bob, "Show me Alice's plan.", (), format_handle(bob_owner, alice_conv))
    with pytest.raises(AppError, match="not one this app returned"):
        send(bob, "Guessing.", (), alice_conv)
    assert [s.id for s in app.store.list(bob_owner)] == [bob_conv]
    bob_texts = [m.text for m in app.store.get(bob_owner, bob_conv).messages]
    assert not any("Alice" in text for text in bob_texts)
    assert [s.id for s in app.store.list(alice_owner)] == [alice_conv]


def test_a_conversation_resumes_after_a_restart(
    tmp_path: Path, tiny_checkpoint: Path, media: dict[str, Path]
) -> None:
    data_dir = tmp_path / "data"
    before = native_engine(tiny_checkpoint, is_demo_model=True)
    first = start_app(app_settings(data_dir), before)
    try:
        handle = send(first.client(), "Remember this picture.", (media["red"],))[-1][1]
    finally:
        first.close()
        before.close()

    after = native_engine(tiny_checkpoint, is_demo_model=True)
    second = start_app(app_settings(data_dir), after)
    try:
        send(second.client(), "What colour was it?", (), handle)
        conv = second.store.get(*parse_handle(handle))
        assert conv is not None
        assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
        image = conv.messages[0].media[0]
        assert second.store.media.path(image.key).is_file()
        assert conv.messages[3].stats.prompt_tokens > conv.messages[1].stats.prompt_tokens
    finally:
        second.close()
        after.close()


FAILURE = "The GPU ran out of memory; send fewer images or try again."


class FlakyFakeEngine:
    """A fake engine (tests only): its first answer breaks after one piece of text, later ones succeed."""

    capabilities = EngineCapabilities(name="flaky-fake", context_length=4096)

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.failures_left = 1
        self.lock = threading.Lock()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        yield Delta("Half an ans")
        with self.lock:
            failing, self.failures_left = self.failures_left > 0, max(0, self.failures_left - 1)
        if failing:
            raise EngineUnavailable(FAILURE)
        yield Delta("wer, then all of it.")
        yield Finished("stop", prompt_tokens=10, generated_tokens=5)

    def close(self) -> None:
        pass


def test_an_engine_failure_is_one_sentence_and_the_conversation_survives(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    running = start_app(
        app_settings(tmp_path / "data"), FlakyFakeEngine(Tokenizer.from_file(tiny_checkpoint))
    )
    try:
        client = running.client()
        job = client.submit("First question", [], "", api_name="/chat")
        with pytest.raises(AppError) as failure:
            job.result()
        assert str(failure.value) == FAILURE
        handle = job.outputs()[0][1]
        owner, conversation_id = parse_handle(handle)
        conv = running.store.get(owner, conversation_id)
        assert [(m.role, m.text) for m in conv.messages] == [
            ("user", "First question"),
            ("assistant", "Half an ans"),
        ]
        assert conv.messages[-1].finish == "error" and conv.messages[-1].error == FAILURE

        outputs = send(client, "Second try", (), handle)
        assert outputs[-1][0] == "Half an answer, then all of it."
        conv = running.store.get(owner, conversation_id)
        assert [m.text for m in conv.messages][-2:] == ["Second try", "Half an answer, then all of it."]
    finally:
        running.close()


def test_stop_cancels_answers_but_never_the_upload_step(app: RunningApp) -> None:
    """The upload step is not a generator: cancelling it would save a message whose answer never starts."""
    config = app.demo.get_config_file()
    names = {fn_id: getattr(block_fn.fn, "__qualname__", None) for fn_id, block_fn in app.demo.fns.items()}
    cancelled_by_stop = {
        fn_id
        for d in config["dependencies"]
        if any(event == "stop" for _, event in d["targets"])
        for fn_id in d["cancels"]
    }
    followers = {i for i, name in names.items() if name in ("ChatHandlers.answer", "AnswerFollower.resume")}
    assert followers and cancelled_by_stop == followers
    stops = [d for d in config["dependencies"] if any(event == "stop" for _, event in d["targets"])]
    assert "AnswerFollower.stop" in [names[d["id"]] for d in stops], "Stop ends the answer's server-side task"
