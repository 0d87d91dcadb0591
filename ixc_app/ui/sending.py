"""Reading a message's attachments while the page shows how far it is, and Stop while it reads.

The files are read (`ChatService.ingest`: checked, stored, a video's frames decoded) in a thread of their own,
so the ingest event's generator can show the user's message at once, with a line per attachment that follows
its progress, and stay responsive to Stop. Stop reaches the reading through the tab's entry in `Readers`
(keyed by Gradio's session hash: one message is read per tab at a time); the next progress report then
raises `StoppedByUser` in the reading thread, which stops a video's decoding at its next frame, and the
ingest takes back what it had stored. The ingest event itself is not cancelled by Stop, so it can put the
composer and the chat back itself, in order, before it ends; leaving the conversation does cancel it, and
its `finally` stops the reading the same way. The raw uploads are removed when the reading ends, however it
ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ixc_app.chat import MediaItem
from ixc_app.chat.service import FileProgress
from ixc_app.ui.uploads import discard_uploads

POLL_S = 0.15
"""How often the page hears how far the reading is (each update re-sends the whole chat, so not more often),
and so how soon a closed event notices it was closed."""
WAITING = "waiting"

Ingest = Callable[[Sequence[str], FileProgress], tuple[MediaItem, ...]]


class StoppedByUser(Exception):
    """The user pressed Stop while the attachments were being read."""


@dataclass(frozen=True)
class FileState:
    """How far one attachment is: its name as uploaded, the share done, and the step it is at."""

    name: str
    fraction: float = 0.0
    step: str = WAITING


class Reading:
    """One message's attachments being read in a thread; `updates` follows it, `result` ends it."""

    def __init__(self, ingest: Ingest, files: Sequence[str]) -> None:
        self.files = tuple(files)
        self.states = [FileState(Path(file).name) for file in self.files]
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._version = 0
        self._items: tuple[MediaItem, ...] = ()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(ingest,), name="ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the reading to stop at its next step (a video: its next frame); it cleans up after itself."""
        self._stop.set()

    def updates(self) -> Iterator[list[FileState] | None]:
        """Every `POLL_S` until the reading ends: the files' states when they changed, else None."""
        seen = -1
        while not self._finished.wait(POLL_S):
            with self._lock:
                version, states = self._version, list(self.states)
            if version != seen:
                seen = version
                yield states
            else:
                yield None

    def result(self) -> tuple[MediaItem, ...]:
        """The stored items once the reading has ended, or its error (`StoppedByUser` after a Stop)."""
        self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._items

    def _progress(self, index: int, fraction: float, step: str) -> None:
        if self._stop.is_set():
            raise StoppedByUser
        with self._lock:
            self.states[index] = FileState(self.states[index].name, fraction, step)
            self._version += 1

    def _run(self, ingest: Ingest) -> None:
        try:
            self._items = ingest(self.files, self._progress)
        except BaseException as exc:
            self._error = exc
        finally:
            discard_uploads(self.files)
            self._finished.set()


class Readers:
    """The reading of each tab (by Gradio's session hash), for its Stop button to find."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: dict[str, Reading] = {}

    def start(self, tab: str, ingest: Ingest, files: Sequence[str]) -> Reading:
        reading = Reading(ingest, files)
        with self._lock:
            self._readings[tab] = reading
        return reading

    def stop(self, tab: str) -> None:
        """Stop the tab's reading, if one is running."""
        with self._lock:
            reading = self._readings.get(tab)
        if reading is not None:
            reading.stop()

    def end(self, tab: str, reading: Reading) -> None:
        """The reading is over for its event (finished, failed or closed): stop it and forget it."""
        reading.stop()
        with self._lock:
            if self._readings.get(tab) is reading:
                del self._readings[tab]
