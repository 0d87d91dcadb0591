"""An engine whose model server the app runs itself: the remote engine over a supervised server process.

The TurboMind engine is LMDeploy's api_server in its own environment, started and restarted by a
`Supervisor`; the requests go through the remote engine like any other OpenAI-compatible server's. What this
adds is the user's side of a server that is down: while it is starting again every request gets one
sentence (a `RetryableError`, which the UI shows as is) instead of a connection error naming a loopback
port, and nothing else changes: conversations live in the app, not in the server, so they stay intact and
the next try after the restart answers normally. The server is stopped with the engine (`close`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from ixc_app.engines.base import (
    EngineCapabilities,
    EngineUnavailable,
    Request,
    RetryableError,
    StreamItem,
)
from ixc_app.engines.remote import RemoteEngine
from ixc_app.i18n import tr
from ixc_app.supervisor import ProcessSpec, StartFailed, Supervisor

log = logging.getLogger(__name__)


class ManagedEngine:
    """`Engine` over a supervised server (`supervisor`, already started); `connect` makes the remote engine
    that talks to it. `name` is what the capabilities call the engine (the UI and logs show it)."""

    def __init__(self, supervisor: Supervisor, connect: Callable[[], RemoteEngine], name: str) -> None:
        self.supervisor = supervisor
        try:
            self.remote = connect()
        except BaseException:
            supervisor.stop()
            raise
        self.tokenizer = self.remote.tokenizer
        self.capabilities: EngineCapabilities = replace(self.remote.capabilities, name=name)

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        if not self.supervisor.serving():
            raise self._down()
        try:
            yield from self.remote.stream(request, cancel)
        except (EngineUnavailable, RetryableError) as exc:
            # A server that died mid-answer breaks the connection before the supervisor notices the exit.
            if not self.supervisor.serving():
                raise self._down() from exc
            raise

    def _down(self) -> RetryableError:
        restarts = self.supervisor.status.restarts
        if restarts:
            return RetryableError(
                tr(
                    "The model server stopped and is starting again (restart {restarts}); your conversation "
                    "is kept, so send your message again in a minute.",
                    restarts=restarts,
                )
            )
        return RetryableError(
            tr(
                "The model server stopped and is starting again; your conversation is kept, so send your "
                "message again in a minute."
            )
        )

    def close(self) -> None:
        self.remote.close()
        self.supervisor.stop()


def start_managed(spec: ProcessSpec, connect: Callable[[str], RemoteEngine], name: str) -> ManagedEngine:
    """Start the server `spec` describes, wait until it is healthy, and connect to it (`connect` gets the
    server's base URL, taken from the health URL). A server that never serves is `EngineUnavailable`, with
    the detail (its log's tail) in the app's log."""
    supervisor = Supervisor(spec)
    try:
        supervisor.start()
    except StartFailed as exc:
        log.error("%s", exc)
        raise EngineUnavailable(
            f"The {name} model server did not start; its log is {spec.log_path} (the app's log shows how it "
            "ended)."
        ) from exc
    base = spec.health_url.rsplit("/", 1)[0]
    return ManagedEngine(supervisor, lambda: connect(base), name)
