"""Run engine streams beside the front ends and hand them the answer so far, at a pace a browser can follow.

Decoding runs on a few long-lived worker threads (as many as the engine can serve at once), so it never waits
for Gradio to re-render the Chatbot between tokens and the number of live engine streams is bounded by the
engine's own capability, not by Gradio's queue alone. The UI side wakes at most every `interval_s` with the
text accumulated so far; while nothing arrives (a long prefill, a wait for a free worker) it yields the
unchanged answer every `interval_s`, because Gradio can only close a generator at a yield and Stop must reach
the engine before the first token too. When the consumer goes away (Stop, a closed tab, an error), the
`finally` sets the engine's cancel event and returns at once: Gradio closes stopped generators on its event
loop, which must not block on a decoding step; the engine stops within one step on its worker.

A stream's work runs in a copy of the caller's context (an answer task's, which is its request's), so the
engine says its errors in the language of the request that asked.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ixc_app.engines.base import Delta, Engine, Finished, Request

log = logging.getLogger(__name__)

STREAM_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Snapshot:
    """The answer so far; `finished` is set on the last snapshot only."""

    text: str
    finished: Finished | None = None


class _End:
    pass


class EngineRunner:
    """How the use cases call the engine: bounded concurrency, cancel on close, throttled snapshots."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        for i in range(max(1, engine.capabilities.max_concurrency)):
            threading.Thread(target=self._work, name=f"engine-stream-{i}", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._jobs.get()()

    def stream(self, request: Request, interval_s: float = STREAM_INTERVAL_S) -> Iterator[Snapshot]:
        """Yield the first text as soon as it exists, then at most one snapshot per `interval_s`.

        Engine errors are re-raised here, in the consumer, with their original type.
        """
        cancel = threading.Event()
        items: queue.SimpleQueue[Delta | Finished | BaseException | _End] = queue.SimpleQueue()

        def produce() -> None:
            try:
                if not cancel.is_set():
                    for item in self.engine.stream(request, cancel):
                        items.put(item)
            except BaseException as exc:
                items.put(exc)
            finally:
                items.put(_End())

        self._jobs.put(functools.partial(contextvars.copy_context().run, produce))
        try:
            yield from _throttle(items, interval_s)
        finally:
            cancel.set()


def _throttle(
    items: queue.SimpleQueue[Delta | Finished | BaseException | _End], interval_s: float
) -> Iterator[Snapshot]:
    """Wake once per interval and take everything that arrived meanwhile; with nothing yet, wait up to one
    interval for the next item and yield the answer unchanged if none comes.

    Waking per token instead would make this thread contend with the decoding thread for the GIL on every
    token, which slows a fast engine down noticeably.
    """
    parts: list[str] = []
    finished: Finished | None = None
    batch: list[Delta | Finished | BaseException | _End] = []
    while True:
        while True:
            try:
                batch.append(items.get_nowait())
            except queue.Empty:
                break
        seen = len(parts)
        for item in batch:
            if isinstance(item, BaseException):
                if len(parts) > seen:
                    yield Snapshot("".join(parts))
                raise item
            if isinstance(item, _End):
                yield Snapshot("".join(parts), finished)
                return
            if isinstance(item, Delta):
                parts.append(item.text)
            elif isinstance(item, Finished):
                finished = item
        if len(parts) > seen:
            yield Snapshot("".join(parts))
            time.sleep(interval_s)
            batch = []
        else:
            batch = list(_wait(items, interval_s))
            if not batch:
                yield Snapshot("".join(parts))


def _wait(
    items: queue.SimpleQueue[Delta | Finished | BaseException | _End], timeout_s: float
) -> tuple[Delta | Finished | BaseException | _End, ...]:
    """The next item, or nothing if none arrives within `timeout_s`."""
    try:
        return (items.get(timeout=timeout_s),)
    except queue.Empty:
        return ()
