"""Every way a remote server can fail gives one sentence, and the chat keeps the conversation and can retry.

The failures come from a fake server (tests only, named as such) that answers `/health` and `/v1/models` like
LMDeploy and then fails `/v1/chat/completions` in the way a test picks: down, HTTP 500, 401, 422, the
proxy's HTTP 200 with `{"error_code": 10402, ...}` (as a body and as a stream line), an engine error inside a
200 stream, malformed SSE, a stream cut short, and a server slower than the read timeout. The real path, our
own server, is tested in test_serve_remote.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_harness import app_settings, free_port
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from serve_harness import Served, serve

from ixc_app.bootstrap import Services, build_services
from ixc_app.chat import ChatSettings, new_conversation, retry
from ixc_app.chat.service import AnswerFailed
from ixc_app.engines.base import (
    BadRequest,
    EngineUnavailable,
    Request,
    RetryableError,
    TimedOut,
)
from ixc_app.engines.remote import RemoteEngine
from ixc_app.ixc.prompt import Turn
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import load_rgb

MODEL = "internlm-xcomposer2d5-7b"
OK_CHUNKS = ["Hel", "lo there", "."]


def sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "1",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish}],
    }


class FakeLMDeployServer:
    """A fake OpenAI-compatible server for the failure tests; `mode` picks how its chat endpoint answers."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.app = FastAPI()
        self.app.get("/health")(self.health)
        self.app.get("/v1/models")(self.models)
        self.app.post("/v1/chat/completions")(self.chat)

    async def health(self) -> Response:
        return Response(status_code=200)

    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model"}]}

    async def chat(self) -> Response:
        mode = self.mode
        if mode == "500":
            return Response("Internal Server Error", status_code=500)
        if mode == "401":
            body = {"error": {"message": "Please request with valid api key!", "code": "invalid_api_key"}}
            return JSONResponse(body, status_code=401)
        if mode == "422":
            detail = [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if mode == "proxy-body":
            return Response(json.dumps({"error_code": 10402, "text": "Failed to get response"}) + "\n")
        return StreamingResponse(self._stream(mode), media_type="text/event-stream")

    async def _stream(self, mode: str) -> AsyncIterator[bytes]:
        if mode == "slow":
            await asyncio.sleep(3)
        yield sse(chunk("Hel"))
        if mode == "proxy-line":
            yield json.dumps({"error_code": 10402, "text": "Failed to get response"}).encode() + b"\n\n"
            return
        if mode == "engine-error":
            yield sse(chunk("internal error happened", "error"))
            yield sse("[DONE]")
            return
        if mode == "malformed":
            yield b"<html>502 Bad Gateway</html>\n\n"
            return
        if mode == "cut":
            return
        for piece in OK_CHUNKS[1:]:
            yield sse(chunk(piece))
        yield sse(chunk("", "stop"))
        yield sse("[DONE]")


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeLMDeployServer, Served]]:
    server = FakeLMDeployServer()
    served = serve(server.app)
    yield server, served
    served.stop()


@pytest.fixture(scope="module")
def tokenizer(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


@pytest.fixture(scope="module")
def remote(fake: tuple[FakeLMDeployServer, Served], tokenizer: Tokenizer) -> Iterator[RemoteEngine]:
    engine = RemoteEngine(fake[1].url, tokenizer=tokenizer, read_image=load_rgb, read_timeout_s=1.0)
    yield engine
    engine.close()


@pytest.fixture
def services(tmp_path: Path, remote: RemoteEngine) -> Iterator[Services]:
    services = build_services(app_settings(tmp_path / "data"), remote)
    yield services
    services.store.close()


REQUEST = Request(turns=(Turn("user", "Hi"),))

FAILURES = {
    "500": (RetryableError, "failed with HTTP 500; try again"),
    "401": (EngineUnavailable, "refused the API key; set --engine-api-key"),
    "422": (BadRequest, r"could not read the request \(body.messages: Field required\)"),
    "proxy-body": (TimedOut, "error 10402"),
    "proxy-line": (TimedOut, "error 10402"),
    "engine-error": (RetryableError, "failed while answering"),
    "malformed": (EngineUnavailable, "not an OpenAI-compatible chat stream"),
    "cut": (RetryableError, "broke off before the answer was complete"),
    "slow": (TimedOut, "sent nothing for 1 s"),
}


def one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message and message[0].isupper()


@pytest.mark.parametrize("mode", list(FAILURES))
def test_each_failure_is_its_typed_sentence(
    mode: str, fake: tuple[FakeLMDeployServer, Served], remote: RemoteEngine
) -> None:
    fake[0].mode = mode
    error, pattern = FAILURES[mode]
    try:
        with pytest.raises(error, match=pattern) as raised:
            list(remote.stream(REQUEST))
    finally:
        fake[0].mode = "ok"
    assert one_sentence(str(raised.value)), str(raised.value)


def test_a_server_that_is_down(tokenizer: Tokenizer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EngineUnavailable, match="cannot be reached; start it") as raised:
        RemoteEngine(url, tokenizer=tokenizer, read_image=load_rgb)
    assert one_sentence(str(raised.value))


def test_a_server_of_another_model(tokenizer: Tokenizer) -> None:
    other = FastAPI()
    other.get("/v1/models")(lambda: {"object": "list", "data": [{"id": "qwen2-vl-7b"}]})
    served = serve(other)
    try:
        with pytest.raises(EngineUnavailable, match=r"serves qwen2-vl-7b, not InternLM-XComposer-2\.5"):
            RemoteEngine(served.url, tokenizer=tokenizer, read_image=load_rgb)
        with pytest.raises(EngineUnavailable, match="serves qwen2-vl-7b, not 'ixc'"):
            RemoteEngine(served.url, tokenizer=tokenizer, read_image=load_rgb, model="ixc")
    finally:
        served.stop()


def ask(services: Services, text: str = "Hi") -> Any:
    conv = new_conversation("owner", ChatSettings())
    return services.chat.add_message(conv, text, ())


@pytest.mark.parametrize("mode", ["500", "proxy-line", "malformed", "slow", "down"])
def test_the_chat_keeps_the_conversation_and_retries(
    mode: str, fake: tuple[FakeLMDeployServer, Served], services: Services
) -> None:
    server, served = fake
    conv, prepared = ask(services, "Tell me something.")
    if mode == "down":
        served.stop()
    else:
        server.mode = mode
    try:
        with pytest.raises(AnswerFailed) as failed:
            list(services.chat.answer(conv, prepared))
    finally:
        server.mode = "ok"
        if mode == "down":
            fake_restarted = serve(server.app, port=served.port)
            served.server, served.thread = fake_restarted.server, fake_restarted.thread
    reason = str(failed.value)
    assert one_sentence(reason)
    stored = services.store.get("owner", conv.id)
    assert stored is not None
    assert [m.role for m in stored.messages] == ["user", "assistant"]
    assert stored.messages[0].text == "Tell me something."
    assert (stored.messages[1].finish, stored.messages[1].error) == ("error", reason)

    again = retry(stored)
    final = list(services.chat.answer(again, services.chat.prepare(again)))[-1]
    assert final.messages[-1].text == "".join(OK_CHUNKS)
    assert final.messages[-1].finish == "stop"
    assert services.store.get("owner", conv.id).messages[-1].text == "".join(OK_CHUNKS)  # type: ignore[union-attr]
