"""Stop strings over streamed text: the answer ends before the first stop string, which is never shown.

Text arrives in pieces, and a stop string may be split across them (the composer's caption step stops at a
closing quote that a token may carry together with other characters), so the tail that could still become a
stop string is held back until the next piece decides it.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Feed text pieces in order with `push`; `flush` gives back what was held when the stream ends."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.stopped = False
        self._held = ""

    def push(self, text: str) -> str:
        """The part of `held + text` that can be shown now; sets `stopped` once a stop string appears."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return buffer[:cut]
        keep = _longest_partial_stop(buffer, self.stops)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held


def _longest_partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the beginning of some stop string (shorter than it)."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best
