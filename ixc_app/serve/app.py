"""The OpenAI-compatible HTTP server over any `Engine`: `/v1/chat/completions`, `/v1/models`, `/health`.

It answers as LMDeploy 0.7.3's api_server does (fields, SSE chunks, `data: [DONE]`, error bodies), so our
nodes and LMDeploy's can sit behind one `lmdeploy serve proxy`. The engine is reached through the protocol
only, through the same `EngineRunner` the chat uses: as many streams run at once as the engine declares it
can serve (its scheduler batches them), the others wait their turn. A client that goes away cancels its
answer, also while the prompt is still being prefilled: the engine stops within a step.

An error found before the first piece of the answer is an HTTP error with an OpenAI-style body; one that
happens later ends the stream with a chunk whose `finish_reason` is "error" and which carries the `error`
object (the official client raises it), then `data: [DONE]`.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ixc_app.chat.runner import EngineRunner, Snapshot
from ixc_app.engines.base import (
    BadRequest,
    ContextTooLong,
    Engine,
    EngineError,
    EngineUnavailable,
    Finished,
    Overloaded,
    RetryableError,
    TimedOut,
)
from ixc_app.engines.wire import SSE_DONE, error_type, model_id
from ixc_app.media import MediaRejected
from ixc_app.serve import protocol
from ixc_app.serve.inputs import Defaults, to_request
from ixc_app.serve.limits import BodySizeLimit, ErrorReply

log = logging.getLogger(__name__)

UNEXPECTED = "The model failed while answering (the details are in the server log); try again."


@dataclass(frozen=True)
class ServerConfig:
    """What the server is told: the model id it serves as, the keys it accepts, its limits and defaults."""

    model_name: str
    defaults: Defaults
    work_dir: Path
    """Each request's images live in a folder of their own here until its answer ends."""
    api_keys: tuple[str, ...] = ()
    max_request_bytes: int = 256 * 1024**2


def create_app(engine: Engine, config: ServerConfig) -> FastAPI:
    runner = EngineRunner(engine)
    shutil.rmtree(config.work_dir, ignore_errors=True)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    modes = {model_id(config.model_name, mode): mode for mode in sorted(engine.capabilities.modes)}
    app = FastAPI(title="IXC-2.5 studio: OpenAI-compatible server", docs_url=None, redoc_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_request_bytes)

    @app.exception_handler(ErrorReply)
    async def reply(_: Request, exc: ErrorReply) -> JSONResponse:
        return exc.response()

    def check_key(request: Request) -> None:
        if not config.api_keys:
            return
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(key, k) for k in config.api_keys):
            raise ErrorReply(
                401,
                "The API key is missing or wrong; send Authorization: Bearer KEY with one of the server's "
                "--api-keys.",
                "invalid_api_key",
            )

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    async def models() -> dict[str, Any]:
        caps = engine.capabilities
        about = {
            "demo": caps.is_demo_model,
            "context_length": caps.context_length,
            "modes": sorted(caps.modes),
        }
        return protocol.model_list(list(modes), about)

    @app.post("/v1/chat/completions", dependencies=[Depends(check_key)], response_model=None)
    async def chat(body: protocol.ChatCompletionRequest, raw: Request) -> Response:
        if body.model not in modes:
            raise ErrorReply(
                404,
                f"The model {body.model!r} does not exist here; this server serves {', '.join(modes)}.",
                "invalid_request_error",
            )
        folder = Path(tempfile.mkdtemp(prefix="request-", dir=config.work_dir))
        try:
            request = await anyio.to_thread.run_sync(
                to_request, body, modes[body.model], folder, config.defaults
            )
            answer = _Answer(runner.stream(request))
            head = await answer.first(raw)
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, (EngineError, MediaRejected)):
                raise _reply(exc) from exc
            if isinstance(exc, Exception):
                log.exception("answering a request failed")
                raise ErrorReply(500, UNEXPECTED, "internal_error") from exc
            raise
        request_id = protocol.completion_id()
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _events(answer, head, request_id, body.model, usage, folder)
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            text = await answer.rest(raw, head)
        except EngineError as exc:
            raise _reply(exc) from exc
        finally:
            answer.close()
            shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse(protocol.completion(request_id, body.model, text, answer.finished))

    return app


class _Answer:
    """The runner's snapshots of one answer as the text each brings that is new."""

    def __init__(self, snapshots: Iterator[Snapshot]) -> None:
        self._snapshots = snapshots
        self._sent = 0
        self.finished: Finished | None = None
        self.done = False

    async def next(self) -> str:
        """New text ('' if none came within the runner's interval); sets `done` after the last."""
        snapshot = await anyio.to_thread.run_sync(next, self._snapshots, None)
        if snapshot is None:
            self.done = True
            return ""
        piece, self._sent = snapshot.text[self._sent :], len(snapshot.text)
        self.finished = snapshot.finished or self.finished
        return piece

    async def first(self, raw: Request) -> str:
        """The first text (or the end), watching for a client that leaves meanwhile."""
        while not self.done:
            piece = await self.next()
            if piece:
                return piece
            if await raw.is_disconnected():
                self.done = True
        return ""

    async def rest(self, raw: Request, head: str) -> str:
        parts = [head]
        while not self.done:
            parts.append(await self.next())
            if await raw.is_disconnected():
                self.done = True
        return "".join(parts)

    def close(self) -> None:
        """Cancels the engine's work if it is still going."""
        self._snapshots.close()  # type: ignore[attr-defined]


async def _events(
    answer: _Answer, head: str, request_id: str, model: str, usage: bool, folder: Path
) -> AsyncIterator[str]:
    def sse(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        if head:
            yield sse(protocol.chunk(request_id, model, head))
        while not answer.done:
            piece = await answer.next()
            if piece:
                yield sse(protocol.chunk(request_id, model, piece))
        reason = answer.finished.finish_reason if answer.finished else "stop"
        usage_info = protocol.usage(answer.finished) if usage else None
        yield sse(
            protocol.chunk(
                request_id, model, "", "length" if reason == "length" else "stop", usage_info=usage_info
            )
        )
    except EngineError as exc:
        yield sse(_error_chunk(request_id, model, str(exc), error_type(exc), _status(exc)))
    except Exception:
        log.exception("a streamed answer failed")
        yield sse(_error_chunk(request_id, model, UNEXPECTED, "internal_error", 500))
    finally:
        answer.close()
        shutil.rmtree(folder, ignore_errors=True)
    yield f"data: {SSE_DONE}\n\n"


def _error_chunk(request_id: str, model: str, message: str, type_name: str, code: int) -> dict[str, Any]:
    return protocol.chunk(request_id, model, "", "error", error=protocol.error_body(message, type_name, code))


def _status(exc: EngineError) -> int:
    if isinstance(exc, (BadRequest, ContextTooLong)):
        return 400
    if isinstance(exc, Overloaded):
        return 429
    if isinstance(exc, TimedOut):
        return 504
    if isinstance(exc, (EngineUnavailable, RetryableError)):
        return 503
    return 500


def _reply(exc: EngineError | MediaRejected) -> ErrorReply:
    if isinstance(exc, MediaRejected):
        return ErrorReply(400, str(exc), "invalid_request_error")
    return ErrorReply(_status(exc), str(exc), error_type(exc))
