"""`EngineRunner`: the answer reaches the UI in order and in few pieces, errors keep their type and what came
before them, and closing the stream stops the engine."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from ixc_app.chat.runner import EngineRunner
from ixc_app.engines.base import (
    Delta,
    EngineCapabilities,
    EngineUnavailable,
    Finished,
    Request,
    StreamItem,
)
from ixc_app.ixc.prompt import Turn

REQUEST = Request(turns=(Turn("user", "hello"),))


class ScriptedFakeEngine:
    """A fake engine (tests only) that streams `pieces`, one every `step_s`, and records how it ended."""

    def __init__(self, pieces: list[str], step_s: float = 0.0, fail_after: int | None = None) -> None:
        self.capabilities = EngineCapabilities(name="scripted-fake")
        self.pieces = pieces
        self.step_s = step_s
        self.fail_after = fail_after
        self.steps = 0
        self.cancelled = threading.Event()
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            for i, piece in enumerate(self.pieces):
                if cancel is not None and cancel.is_set():
                    self.cancelled.set()
                    yield Finished("cancelled", prompt_tokens=3, generated_tokens=i)
                    return
                if i == self.fail_after:
                    raise EngineUnavailable("The engine went away; try again.")
                time.sleep(self.step_s)
                self.steps += 1
                yield Delta(piece)
            yield Finished("stop", prompt_tokens=3, generated_tokens=len(self.pieces))
        finally:
            with self.lock:
                self.running -= 1


def test_the_whole_answer_arrives_in_order_with_its_finish_record() -> None:
    pieces = [f"w{i} " for i in range(200)]
    snapshots = list(EngineRunner(ScriptedFakeEngine(pieces)).stream(REQUEST, interval_s=0.01))
    assert snapshots[-1].text == "".join(pieces)
    assert snapshots[-1].finished is not None and snapshots[-1].finished.finish_reason == "stop"
    assert all(s.finished is None for s in snapshots[:-1])
    texts = [s.text for s in snapshots]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))


def test_fast_tokens_are_batched_into_few_snapshots() -> None:
    engine = ScriptedFakeEngine([f"w{i} " for i in range(100)], step_s=0.002)
    snapshots = [s for s in EngineRunner(engine).stream(REQUEST, interval_s=0.05) if s.text]
    assert 2 <= len(snapshots) < 50
    assert snapshots[0].text == "w0 ", "the first piece is shown as soon as it exists"


def test_an_engine_error_is_raised_after_the_text_before_it() -> None:
    stream = EngineRunner(ScriptedFakeEngine(["Half ", "an ", "answer"], fail_after=2)).stream(REQUEST, 0.01)
    seen = []
    with pytest.raises(EngineUnavailable, match="The engine went away"):
        for snapshot in stream:
            seen.append(snapshot.text)
    assert seen[-1] == "Half an "


def test_closing_the_stream_stops_the_engine() -> None:
    engine = ScriptedFakeEngine([f"w{i} " for i in range(10_000)], step_s=0.001)
    stream = EngineRunner(engine).stream(REQUEST, interval_s=0.01)
    next(stream)
    stream.close()
    assert engine.cancelled.wait(timeout=5), "the engine was not told to stop"
    steps = engine.steps
    time.sleep(0.1)
    assert engine.steps == steps < 10_000


class SlowPrefillFakeEngine:
    """A fake engine (tests only) whose prefill takes `prefill_s` unless it is cancelled first."""

    capabilities = EngineCapabilities(name="slow-prefill-fake")

    def __init__(self, prefill_s: float) -> None:
        self.prefill_s = prefill_s
        self.cancelled_in_prefill = threading.Event()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        if cancel is not None and cancel.wait(self.prefill_s):
            self.cancelled_in_prefill.set()
            yield Finished("cancelled", prompt_tokens=3, generated_tokens=0)
            return
        yield Delta("first")
        yield Finished("stop", prompt_tokens=3, generated_tokens=1)


def test_closing_the_stream_during_a_long_prefill_stops_the_engine() -> None:
    engine = SlowPrefillFakeEngine(prefill_s=30)
    stream = EngineRunner(engine).stream(REQUEST, interval_s=0.01)
    waiting = next(stream)
    assert waiting.text == "" and waiting.finished is None, "before the first token the answer is unchanged"
    stream.close()
    assert engine.cancelled_in_prefill.wait(timeout=10), "Stop did not reach the engine during its prefill"


def test_no_more_streams_run_at_once_than_the_engine_allows() -> None:
    engine = ScriptedFakeEngine(["a", "b", "c"], step_s=0.02)
    runner = EngineRunner(engine)
    results: list[str] = []

    def consume() -> None:
        results.append(list(runner.stream(REQUEST, interval_s=0.01))[-1].text)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == ["abc"] * 4
    assert engine.most_running == engine.capabilities.max_concurrency == 1


def test_as_many_streams_run_at_once_as_the_engine_batches() -> None:
    """The native engine's batch limit becomes `max_concurrency`; the runner's workers follow it."""
    engine = ScriptedFakeEngine(["a", "b", "c"], step_s=0.05)
    engine.capabilities = dataclasses.replace(engine.capabilities, max_concurrency=3)
    runner = EngineRunner(engine)
    threads = [
        threading.Thread(target=lambda: list(runner.stream(REQUEST, interval_s=0.01))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert engine.most_running == 3
