"""Run one server process for the app: start it, wait for its health URL, restart it with backoff, stop it.

Generic on purpose (a command, a health URL, a backoff, a stop): the TurboMind engine supervises LMDeploy's
`api_server` with it, and the tests supervise `python -m ixc_app.serve` through the same code. What it
guarantees:

- `start` returns once the health URL answers 200, logging progress while it waits (with the last line the
  server wrote); a server that exits or stays unhealthy past the start timeout is a `StartFailed` with the
  tail of its log.
- A server that dies later is started again after a growing pause (`backoff_s`, the last value repeating),
  reset once a start succeeds; meanwhile `status` says it is down, so callers can tell their users.
- No orphan: the server runs in its own process group (so `stop` ends whatever it started too), and it gets
  SIGTERM from the kernel when the supervising thread's process dies, however it dies (`PR_SET_PDEATHSIG`,
  Linux). The kernel sends that signal when the *thread* that forked the child ends, so every child is
  started from the one monitor thread, which lives until `stop`.

The server's stdout and stderr go to a log file (appended across restarts), never to the app's own output.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

log = logging.getLogger(__name__)

State = Literal["starting", "running", "restarting", "stopped", "failed"]
PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 15


class StartFailed(RuntimeError):
    """The server did not become healthy; the message says why, with the tail of its log."""


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how to know it serves.

    `health_url` must answer 200 when the server is ready. `start_timeout_s` bounds each wait for it (a 7B
    model loads in minutes); `backoff_s` are the pauses before successive restarts, which start from the
    first again once a server has served for `stable_s`.
    """

    name: str
    command: tuple[str, ...]
    health_url: str
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    health_headers: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 900.0
    poll_s: float = 0.5
    progress_every_s: float = 15.0
    backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    stable_s: float = 60.0
    stop_timeout_s: float = 20.0


@dataclass(frozen=True)
class Status:
    """Where the server stands: `state`, the process id while one runs, how many restarts so far, and since
    when (monotonic seconds) it has been in this state."""

    state: State
    pid: int | None
    restarts: int
    since: float
    detail: str = ""


def _death_signal_setter() -> Callable[[], None]:
    """A preexec function: the child asks for SIGTERM when its parent thread dies, and leaves at once if
    that parent is already gone. libc is looked up here, before the fork, so the child only makes calls."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def set_death_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return set_death_signal


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a server's log ('' when it wrote nothing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Supervisor:
    """One supervised server; see the module docstring. Not restartable once stopped."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._first = threading.Event()
        self._first_error: StartFailed | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._restarts = 0
        self._status = Status("stopped", None, 0, time.monotonic())
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> Status:
        return self._status

    def serving(self) -> bool:
        """The server answered its health check and its process is still alive (checked now, not at the
        monitor's next poll)."""
        with self._lock:
            process = self._process
        return self._status.state == "running" and process is not None and process.poll() is None

    def start(self) -> None:
        """Start the server and return once it is healthy; `StartFailed` (and nothing left running) if not."""
        if self._thread is not None:
            raise RuntimeError(f"{self.spec.name} was already started")
        self._thread = threading.Thread(target=self._monitor, name=f"supervise-{self.spec.name}", daemon=True)
        self._thread.start()
        self._first.wait()
        if self._first_error is not None:
            self.stop()
            raise self._first_error

    def stop(self) -> None:
        """Stop the server (SIGTERM to its group, SIGKILL after `stop_timeout_s`) and stop supervising."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None:
            self._terminate(process)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.spec.stop_timeout_s + 5)
        self._set("stopped", None)

    def _monitor(self) -> None:
        """Start, wait, watch, restart: the thread that owns every child (see the module docstring)."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._launch_and_wait()
            except StartFailed as exc:
                if not self._first.is_set():
                    self._first_error = exc
                    self._set("failed", None, str(exc))
                    self._first.set()
                    return
                log.error("%s", exc)
            else:
                self._first.set()
                if self._watch() >= self.spec.stable_s:
                    attempt = 0
            if self._stopping.is_set():
                return
            pause = self.spec.backoff_s[min(attempt, len(self.spec.backoff_s) - 1)]
            attempt += 1
            self._set("restarting", None, f"starting again in {pause:g} s")
            log.warning("%s: starting it again in %g s (restart %d)", self.spec.name, pause, attempt)
            if self._stopping.wait(pause):
                return
            self._restarts += 1

    def _launch_and_wait(self) -> None:
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab") as out:
            out.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n".encode())
            out.flush()
            try:
                process = subprocess.Popen(
                    list(spec.command),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=dict(spec.env) if spec.env is not None else None,
                    cwd=spec.cwd,
                    start_new_session=True,
                    preexec_fn=_death_signal_setter(),
                )
            except OSError as exc:
                raise StartFailed(f"{spec.name} cannot be run ({spec.command[0]}): {exc}") from exc
        with self._lock:
            self._process = process
        if self._stopping.is_set():
            self._terminate(process)
            return
        started = time.monotonic()
        self._set("starting", process.pid, "waiting for it to answer its health check")
        log.info("%s: started (pid %d), waiting for %s", spec.name, process.pid, spec.health_url)
        if self._wait_healthy(process, started):
            self._set("running", process.pid)
            log.info("%s: ready after %.0f s", spec.name, time.monotonic() - started)

    def _wait_healthy(self, process: subprocess.Popen[bytes], started: float) -> bool:
        """True once healthy, False when `stop` came first; `StartFailed` when it exits or times out."""
        spec = self.spec
        next_progress = started + spec.progress_every_s
        with httpx.Client(timeout=max(spec.poll_s, 2.0), headers=dict(spec.health_headers)) as client:
            while not self._stopping.is_set():
                code = process.poll()
                if code is not None:
                    raise StartFailed(
                        f"{spec.name} exited with code {code} before it was ready; its log "
                        f"({spec.log_path}) ends:\n{log_tail(spec.log_path)}"
                    )
                if self._healthy(client):
                    return True
                now = time.monotonic()
                if now - started > spec.start_timeout_s:
                    self._terminate(process)
                    raise StartFailed(
                        f"{spec.name} did not answer {spec.health_url} within {spec.start_timeout_s:g} s; "
                        f"its log ({spec.log_path}) ends:\n{log_tail(spec.log_path)}"
                    )
                if now >= next_progress:
                    last = log_tail(spec.log_path, 1)
                    log.info(
                        "%s: still starting (%.0f s)%s", spec.name, now - started, f": {last}" * bool(last)
                    )
                    self._set("starting", process.pid, f"starting for {now - started:.0f} s")
                    next_progress = now + spec.progress_every_s
                self._stopping.wait(spec.poll_s)
        return False

    def _healthy(self, client: httpx.Client) -> bool:
        try:
            return client.get(self.spec.health_url).status_code == 200
        except httpx.HTTPError:
            return False

    def _watch(self) -> float:
        """Wait until the running server exits (or `stop`), say how it ended; returns how long it served."""
        with self._lock:
            process = self._process
        assert process is not None
        started = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=self.spec.poll_s)
                if self._stopping.is_set():
                    break
                log.error(
                    "%s exited with code %d while serving; its log (%s) ends:\n%s",
                    self.spec.name,
                    code,
                    self.spec.log_path,
                    log_tail(self.spec.log_path),
                )
                break
        return time.monotonic() - started

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the server's process group, SIGKILL if it does not leave in time; then SIGKILL to what
        it left behind in its group."""
        for sig, wait in ((signal.SIGTERM, self.spec.stop_timeout_s), (signal.SIGKILL, 10.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def _set(self, state: State, pid: int | None, detail: str = "") -> None:
        old = self._status
        since = old.since if state == old.state else time.monotonic()
        self._status = Status(state, pid, self._restarts, since, detail)
