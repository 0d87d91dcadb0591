"""The remote engine against our own server on loopback (real HTTP, real SSE), both over the tiny checkpoint.

The server (`ixc_app.serve`) runs the native engine; the remote engine's answers must be the native engine's
own, token for token, for multi-image and video turns with the same seed. Cancelling closes the stream and
the server's engine stops; the server's refusals come back as the same typed errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import write_mp4, write_png
from serve_harness import Served, serve

from ixc_app.chat.ingest import ingest_upload
from ixc_app.chat.request import image_ref
from ixc_app.config import Limits
from ixc_app.engines.base import (
    BadRequest,
    ContextTooLong,
    Delta,
    Engine,
    Finished,
    GenerationParams,
    Request,
    StreamItem,
)
from ixc_app.engines.remote import RemoteEngine
from ixc_app.ixc.prompt import ImageRef, Turn
from ixc_app.ixc.template import CHAT_META
from ixc_app.media import MediaStore, load_rgb
from ixc_app.serve import ServerConfig, create_app
from ixc_app.serve.inputs import Defaults

MODEL = "internlm-xcomposer2d5-tiny"
SAMPLING = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.8, top_k=40, seed=7)


class WatchedEngine:
    """A test wrapper around a real engine: records how many items each stream gave and when it closed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.capabilities = engine.capabilities
        self.tokenizer = engine.tokenizer
        self.items = 0
        self.closed = threading.Event()
        self.cancels: list[threading.Event] = []

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        self.closed.clear()
        if cancel is not None:
            self.cancels.append(cancel)
        try:
            for item in self.engine.stream(request, cancel):
                self.items += 1
                yield item
        finally:
            self.closed.set()

    def close(self) -> None:
        pass


def server_config(tmp: Path, **changes: Any) -> ServerConfig:
    config = ServerConfig(
        model_name=MODEL, defaults=Defaults(CHAT_META, 1, 1, Limits()), work_dir=tmp / "serve-requests"
    )
    return replace(config, **changes)


@pytest.fixture(scope="module")
def watched(engine: Engine) -> WatchedEngine:
    return WatchedEngine(engine)


@pytest.fixture(scope="module")
def server(watched: WatchedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(create_app(watched, server_config(tmp_path_factory.mktemp("serve"))))  # type: ignore[arg-type]
    yield served
    served.stop()


@pytest.fixture(scope="module")
def remote(server: Served, engine: Engine) -> Iterator[RemoteEngine]:
    client = RemoteEngine(server.url, tokenizer=engine.tokenizer, read_image=load_rgb)
    yield client
    client.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageRef]:
    """Two images and a video, ingested as the chat ingests uploads (the video becomes its frame strip)."""
    folder = tmp_path_factory.mktemp("media")
    store = MediaStore(folder / "media")
    refs = {}
    for name, source in (
        ("red", write_png(folder / "red.png", (200, 30, 30), (300, 200))),
        ("blue", write_png(folder / "blue.png", (20, 40, 220), (120, 260))),
        ("video", write_mp4(folder / "clip.mp4")),
    ):
        refs[name] = image_ref(ingest_upload(store, source, Limits()), store.path)
    return refs


def answer(engine: Engine, request: Request, cancel: threading.Event | None = None) -> tuple[str, Finished]:
    items = list(engine.stream(request, cancel))
    finished = items[-1]
    assert isinstance(finished, Finished)
    return "".join(item.text for item in items if isinstance(item, Delta)), finished


def chat(*turns: Turn, **fields: Any) -> Request:
    return Request(
        turns=turns, params=SAMPLING, meta_instruction=CHAT_META, hd_num_single=1, hd_num_multi=1, **fields
    )


def test_the_remote_engine_finds_the_model_and_its_modes(remote: RemoteEngine, engine: Engine) -> None:
    assert remote.model == MODEL
    assert remote.capabilities.modes == engine.capabilities.modes
    assert remote.capabilities.is_demo_model is True
    assert remote.capabilities.context_length == engine.capabilities.context_length


def test_multi_image_turns_answer_as_in_process(
    remote: RemoteEngine, engine: Engine, media: dict[str, ImageRef]
) -> None:
    request = chat(
        Turn("user", "What differs?", (media["red"], media["blue"])),
        Turn("assistant", "The colour."),
        Turn("user", "And the shape?"),
    )
    local, local_end = answer(engine, request)
    over_http, http_end = answer(remote, request)
    assert over_http == local
    assert local_end.generated_tokens > 0
    assert (http_end.prompt_tokens, http_end.finish_reason) == (
        local_end.prompt_tokens,
        local_end.finish_reason,
    )


def test_video_turns_answer_as_in_process(
    remote: RemoteEngine, engine: Engine, media: dict[str, ImageRef]
) -> None:
    video = media["video"]
    assert video.is_video and video.height // 560 > 1
    request = chat(Turn("user", "Here are some frames of a video. Describe this video in detail", (video,)))
    assert answer(remote, request)[0] == answer(engine, request)[0]


def test_a_prefill_and_a_stop_string_work_as_in_process(remote: RemoteEngine, engine: Engine) -> None:
    request = chat(Turn("user", "Name a colour."), prefill="The colour is")
    local, _ = answer(engine, request)
    assert answer(remote, request)[0] == local
    stop = local.strip()[3:5] or local[:2]
    stopped = replace(request, stop=(stop,))
    text, finished = answer(remote, stopped)
    assert (text, finished.finish_reason) == (answer(engine, stopped)[0], "stop")
    assert stop not in text


def test_cancel_closes_the_stream_and_the_server_engine_stops(
    remote: RemoteEngine, watched: WatchedEngine
) -> None:
    request = chat(Turn("user", "Tell a long story."))
    request = replace(request, params=replace(SAMPLING, max_new_tokens=2000))
    cancel = threading.Event()
    stream = remote.stream(request, cancel)
    first = next(stream)
    assert isinstance(first, Delta)
    cancel.set()
    rest = list(stream)
    assert isinstance(rest[-1], Finished) and rest[-1].finish_reason == "cancelled"
    assert watched.closed.wait(5), "the server's engine stream was not closed"
    assert watched.cancels[-1].is_set()
    settled = watched.items
    time.sleep(0.5)
    assert watched.items == settled
    assert settled < 2000


def test_closing_the_stream_cancels_too(remote: RemoteEngine, watched: WatchedEngine) -> None:
    request = replace(chat(Turn("user", "Go on.")), params=replace(SAMPLING, max_new_tokens=2000))
    stream = remote.stream(request)
    next(stream)
    stream.close()
    assert watched.closed.wait(5)
    assert watched.cancels[-1].is_set()


def test_the_server_refusals_come_back_typed(remote: RemoteEngine) -> None:
    too_long = replace(chat(Turn("user", "Hi")), params=replace(SAMPLING, max_new_tokens=4096))
    with pytest.raises(ContextTooLong, match="exceeds the model's context"):
        list(remote.stream(too_long))
    with pytest.raises(BadRequest, match="alternate"):
        list(remote.stream(chat(Turn("user", "a"), Turn("user", "b"))))


def test_refuses_what_the_server_cannot_honour_before_sending(remote: RemoteEngine) -> None:
    with pytest.raises(BadRequest, match="beam search"):
        list(remote.stream(replace(chat(Turn("user", "Hi")), params=replace(SAMPLING, num_beams=2))))


def test_the_server_rejects_images_that_are_not_data_urls_paths_or_bad_data(
    server: Served, tmp_path: Path
) -> None:
    png = write_png(tmp_path / "a.png", (1, 2, 3))
    for url, expected in (
        (str(png), "not a data: URL"),
        ("http://127.0.0.1:1/a.png", "not a data: URL"),
        ("data:image/png;base64,aGVsbG8gd29ybGQ=", "not an image"),
        ("data:image/png;base64,@@@", "not valid base64"),
    ):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image(url)]}],
        }
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 400, url
        assert reply.json()["object"] == "error"
        assert expected in reply.json()["message"], url


def test_unknown_model_and_bad_fields(server: Served) -> None:
    reply = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": "gpt-4", "messages": []}, timeout=30
    )
    assert reply.status_code == 404 and MODEL in reply.json()["message"]
    reply = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": []}, timeout=30)
    assert reply.status_code == 422 and "detail" in reply.json()


def test_the_request_body_limit(watched: WatchedEngine, tmp_path: Path) -> None:
    served = serve(create_app(watched, server_config(tmp_path, max_request_bytes=4096)))  # type: ignore[arg-type]
    try:
        big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 10_000}]}
        reply = httpx.post(f"{served.url}/v1/chat/completions", json=big, timeout=30)
        assert reply.status_code == 413 and "--max-request-size" in reply.json()["message"]

        def chunked() -> Iterator[bytes]:
            yield b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
            yield b"y" * 10_000
            yield b'"}]}'

        reply = httpx.post(
            f"{served.url}/v1/chat/completions",
            content=chunked(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert reply.status_code == 413
    finally:
        served.stop()


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


# The official OpenAI client against our server.


def data_url(path: Path) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_the_openai_client_streams_and_not(server: Served, tmp_path: Path) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    picture = write_png(tmp_path / "p.png", (10, 160, 90), (700, 400))
    messages: Any = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is it?"}, image(data_url(picture), hd_num=1)],
        }
    ]
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, seed=3)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 8
    assert whole.usage.prompt_tokens > 841  # the image alone is 841 embeddings at hd_num 1
    pieces = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=8,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(pieces)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert [m.id for m in client.models.list().data] == [MODEL, f"{MODEL}-web", f"{MODEL}-write"]


def test_the_openai_client_sees_a_path_or_url_image_refused(server: Served) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    for url in ("/etc/hostname", "https://example.com/cat.png"):
        messages: Any = [{"role": "user", "content": [{"type": "text", "text": "hi"}, image(url)]}]
        with pytest.raises(openai.BadRequestError, match="data: URL"):
            client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4)


def test_api_keys(watched: WatchedEngine, tmp_path: Path) -> None:
    import openai

    served = serve(create_app(watched, server_config(tmp_path, api_keys=("k1", "k2"))))  # type: ignore[arg-type]
    try:
        messages: Any = [{"role": "user", "content": "hi"}]
        wrong = openai.OpenAI(base_url=f"{served.url}/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="--api-keys"):
            wrong.chat.completions.create(model=MODEL, messages=messages, max_tokens=2)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=f"{served.url}/v1", api_key="k2", max_retries=0)
        assert right.chat.completions.create(model=MODEL, messages=messages, max_tokens=2).choices[0].message
        assert (
            httpx.get(f"{served.url}/health", timeout=10).status_code == 200
        )  # unauthenticated, as LMDeploy's
    finally:
        served.stop()
