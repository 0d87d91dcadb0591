"""The request body size limit, and the one way the server answers with an error body.

The limit is enforced on the bytes as they arrive, not only on `Content-Length`, so a chunked upload cannot
get past it; a body over it is answered 413 before any of it is parsed.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ixc_app.serve.protocol import error_body

SERVER_ADVICE = "send fewer or smaller images, or raise --max-request-size"


class ErrorReply(Exception):
    """An error the server answers with: HTTP status, one sentence, and the OpenAI-style `type`."""

    def __init__(self, status: int, message: str, type_name: str) -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type_name

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(str(self), self.type_name, self.status), status_code=self.status)


class BodySizeLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`.

    Past the limit the app is told the body ended (it is not read further), and whatever the app answers to
    the cut body is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, advice: str = SERVER_ADVICE) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.advice = advice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        over = False
        refused = False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replaced(message: Message) -> None:
            nonlocal refused
            if not over:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(scope, receive, send)

        await self.app(scope, counted, replaced)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = f"{self.max_bytes / 1024**2:g} MB"
        reply = ErrorReply(
            413, f"The request is over this server's {size} limit; {self.advice}.", "invalid_request_error"
        )
        await reply.response()(scope, receive, send)
