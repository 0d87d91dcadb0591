"""What an OpenAI-compatible server sends back, read into stream events or one typed error each.

The error shapes come from the servers the remote engine talks to: OpenAI-style bodies
`{"object": "error", "message", "type", "code"}` (LMDeploy's 400/401/404, ours with the typed error named in
`type`), FastAPI's 422 `{"detail": [...]}`, an engine failure inside a 200 stream (`finish_reason: "error"`),
and the proxy's masking of a node failure or timeout as HTTP 200 with a body or stream line
`{"error_code": 10402, "text": ...}` and no `data:` prefix. Each becomes one sentence a user can act on;
none of them may end as an empty answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ixc_app.engines.base import (
    BadRequest,
    EngineError,
    EngineUnavailable,
    Overloaded,
    RetryableError,
    TimedOut,
)
from ixc_app.engines.wire import SSE_DONE, error_class
from ixc_app.i18n import tr

PROXY_MODEL_NOT_FOUND = 10400
PROXY_SERVICE_UNAVAILABLE = 10401
PROXY_API_TIMEOUT = 10402


@dataclass(frozen=True)
class Chunk:
    """One streamed piece: text, the finish reason on the last one, and the token counts when sent."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def http_error(status: int, body: bytes, server: str, model: str) -> EngineError:
    """The typed error for an HTTP status that is not 200 (the body gives detail where it can)."""
    data = _json(body)
    message = _message(data)
    if isinstance(data, dict) and (ours := _our_error(data)) is not None:
        return ours
    if status in (401, 403):
        return EngineUnavailable(
            f"The model server at {server} refused the API key; set --engine-api-key (IXC_ENGINE_API_KEY) to "
            "a key it accepts."
        )
    if status == 404:
        return EngineUnavailable(
            f"The model server at {server} has no model {model!r} ({message or 'not found'}); check "
            "--engine-url and --engine-model."
        )
    if status == 413:
        return BadRequest(
            tr(
                "The request is larger than the model server at {server} accepts; send fewer or smaller "
                "images, or raise the server's request size limit.",
                server=server,
            )
        )
    if status == 422:
        return BadRequest(
            f"The model server at {server} could not read the request ({_validation(data)}); it may speak "
            "another API than LMDeploy's."
        )
    if status == 400:
        return BadRequest(
            tr(
                "The model server at {server} rejected the request: {reason}",
                server=server,
                reason=_sentence(message),
            )
        )
    if status in (429, 503):
        return Overloaded(
            tr(
                "The model server at {server} is busy (HTTP {status}); try again in a moment.",
                server=server,
                status=status,
            )
        )
    return RetryableError(
        tr(
            "The model server at {server} failed with HTTP {status}; try again, and check the server's log "
            "if it keeps failing.",
            server=server,
            status=status,
        )
    )


def body_error(data: Any, server: str, model: str) -> EngineError | None:
    """The error a 200 body (or stream line) carries instead of an answer, if it carries one."""
    if not isinstance(data, dict):
        return None
    if "error_code" in data:
        return _proxy_error(data, server, model)
    if data.get("object") == "error" or ("choices" not in data and ("message" in data or "detail" in data)):
        ours = _our_error(data)
        if ours is not None:
            return ours
        code = data.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
        return http_error(status, json.dumps(data).encode(), server, model)
    if isinstance(data.get("error"), dict):
        inner = data["error"]
        return _our_error(inner) or failed_while_answering(server, _message(inner))
    return None


def read_stream(lines: Iterator[str], server: str, model: str) -> Iterator[Chunk]:
    """The chunks of an SSE reply up to `data: [DONE]`; raises the typed error for anything else."""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(":") or line.startswith(("event:", "id:", "retry:")):
            continue
        payload = line.removeprefix("data:").strip() if line.startswith("data:") else line
        if payload == SSE_DONE:
            return
        data = _json(payload.encode())
        error = body_error(data, server, model)
        if error is not None:
            raise error
        if not line.startswith("data:") or not isinstance(data, dict) or not data.get("choices"):
            raise not_openai(server)
        yield _chunk(data, server)
    raise broke_off(server)


def broke_off(server: str) -> RetryableError:
    return RetryableError(
        tr(
            "The connection to the model server at {server} broke off before the answer was complete; try "
            "again.",
            server=server,
        )
    )


def not_openai(server: str) -> EngineUnavailable:
    return EngineUnavailable(
        f"The server at {server} sent a reply that is not an OpenAI-compatible chat stream; check that "
        "--engine-url points at LMDeploy's api_server or proxy, or at python -m ixc_app.serve."
    )


def _chunk(data: dict[str, Any], server: str) -> Chunk:
    choice = data["choices"][0]
    if not isinstance(choice, dict):
        raise not_openai(server)
    delta = choice.get("delta") or choice.get("message") or {}
    usage = data.get("usage") or {}
    text = delta.get("content") if isinstance(delta, dict) else None
    error = data.get("error")
    return Chunk(
        text=text if isinstance(text, str) else "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        error=_message(error) if isinstance(error, dict) else None,
    )


def stream_failed(chunk: Chunk, server: str) -> EngineError:
    """The error of a stream that ended with finish_reason "error" (LMDeploy sends no reason with it)."""
    return failed_while_answering(server, chunk.error or None)


def failed_while_answering(server: str, reason: str | None) -> RetryableError:
    """The server's failure in mid-answer, with its reason (None: it gave none; "": it gave an empty one)."""
    if reason is None:
        return RetryableError(
            tr("The model server at {server} failed while answering; try again.", server=server)
        )
    return RetryableError(
        tr(
            "The model server at {server} failed while answering ({reason}); try again.",
            server=server,
            reason=_sentence(reason).rstrip("."),
        )
    )


def _proxy_error(data: dict[str, Any], server: str, model: str) -> EngineError:
    code = data.get("error_code")
    if code == PROXY_MODEL_NOT_FOUND:
        return EngineUnavailable(
            f"The proxy at {server} has no model server for {model!r} (error {code}); register one with its "
            "POST /nodes/add."
        )
    if code == PROXY_SERVICE_UNAVAILABLE:
        return Overloaded(
            tr(
                "The proxy at {server} has no model server free now (error {code}); try again later.",
                server=server,
                code=code,
            )
        )
    return TimedOut(
        tr(
            "The proxy at {server} got no answer from its model server (error {code}: the node failed or "
            "timed out); try again.",
            server=server,
            code=code,
        )
    )


def _our_error(data: dict[str, Any]) -> EngineError | None:
    """The typed error our own server named in `type`, with its sentence."""
    cls = error_class(str(data.get("type", "")))
    message = data.get("message")
    return cls(message) if cls is not None and isinstance(message, str) and message else None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _message(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("message", "text", "detail"):
            if isinstance(data.get(key), str):
                return data[key]
    return ""


def _validation(data: Any) -> str:
    """FastAPI's first validation complaint as `where: what`."""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        where = ".".join(str(part) for part in detail[0].get("loc", ()))
        return f"{where}: {detail[0].get('msg', 'invalid')}"
    return str(detail or "invalid fields")


def _sentence(message: str) -> str:
    text = " ".join((message or "no reason given").split())
    return text if text.endswith(".") else text + "."
