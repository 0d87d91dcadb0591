"""The supervisor and the managed engine, over the real `python -m ixc_app.serve` on the tiny checkpoint.

This is the TurboMind engine's code path with our server in place of LMDeploy's (`engines.managed`): start and
wait for `/health` with progress, a crash (the server killed) restarted after a growing backoff, the user's
one sentence while it is down and a normal answer after, a clean stop, and no server left behind when the
supervising process gets SIGTERM or SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from app_harness import free_port
from conftest import REPO_ROOT

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request, RetryableError
from ixc_app.engines.managed import ManagedEngine, start_managed
from ixc_app.engines.remote import RemoteEngine
from ixc_app.ixc.prompt import Turn
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import load_rgb
from ixc_app.supervisor import ProcessSpec, StartFailed, Supervisor

WAIT_S = 120
"""How long a test waits for something that must happen (a restart, an exit) before it fails."""
BACKOFF = (0.2, 0.5)


def serve_spec(checkpoint: Path, folder: Path, **options: object) -> ProcessSpec:
    port = free_port()
    command = (sys.executable, "-m", "ixc_app.serve", "--model", str(checkpoint), "--device", "cpu")
    command += ("--port", str(port), "--data-dir", str(folder / "data"))
    return ProcessSpec(
        "serve",
        command,
        f"http://127.0.0.1:{port}/health",
        folder / "serve.log",
        cwd=REPO_ROOT,
        **options,  # type: ignore[arg-type]
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT_S} s")
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def killed_at_exit(pid_of: Callable[[], int | None]) -> Iterator[None]:
    """Whatever the test leaves running is killed, so a failing test leaves no server behind either."""
    try:
        yield
    finally:
        pid = pid_of()
        if pid is not None and not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_start_waits_for_health_restarts_a_crashed_server_with_backoff_and_stops(
    tiny_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ixc_app.supervisor")
    spec = serve_spec(tiny_checkpoint, tmp_path, backoff_s=BACKOFF, stable_s=1e9, progress_every_s=0.2)
    supervisor = Supervisor(spec)
    with killed_at_exit(lambda: supervisor.status.pid):
        supervisor.start()
        first = supervisor.status.pid
        assert supervisor.serving() and first is not None and supervisor.status.restarts == 0
        assert "still starting" in caplog.text and "ready after" in caplog.text
        pids = [first]
        for restart in (1, 2):
            os.kill(pids[-1], signal.SIGKILL)
            wait_for(lambda: not supervisor.serving(), "noticing the crash")
            wait_for(supervisor.serving, f"restart {restart}")
            pids.append(supervisor.status.pid)
            assert supervisor.status.restarts == restart
        assert len(set(pids)) == 3
        assert "starting it again in 0.2 s (restart 1)" in caplog.text
        assert "starting it again in 0.5 s (restart 2)" in caplog.text
        assert "exited with code -9 while serving" in caplog.text
        supervisor.stop()
        assert supervisor.status.state == "stopped" and not supervisor.serving()
        assert gone(pids[-1])
    assert "---- " in spec.log_path.read_text() and "serving" in spec.log_path.read_text()


def test_a_server_that_exits_before_it_serves_is_a_start_failure_with_its_log(tmp_path: Path) -> None:
    command = (sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)")
    spec = ProcessSpec("broken", command, f"http://127.0.0.1:{free_port()}/health", tmp_path / "broken.log")
    supervisor = Supervisor(spec)
    with pytest.raises(StartFailed, match="exited with code 3") as failure:
        supervisor.start()
    assert "no model here" in str(failure.value)
    assert supervisor.status.state == "stopped"
    missing = ProcessSpec("missing", (str(tmp_path / "no-such-program"),), spec.health_url, spec.log_path)
    with pytest.raises(StartFailed, match="cannot be run"):
        Supervisor(missing).start()


def ask(engine: ManagedEngine, text: str) -> str:
    request = Request(
        turns=(Turn("user", text),),
        params=GenerationParams(max_new_tokens=4, seed=1),
        hd_num_single=1,
        hd_num_multi=1,
    )
    items = list(engine.stream(request))
    assert isinstance(items[-1], Finished)
    return "".join(item.text for item in items if isinstance(item, Delta))


def test_while_the_managed_server_is_down_requests_get_one_sentence_and_answer_after_the_restart(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    spec = serve_spec(tiny_checkpoint, tmp_path, backoff_s=(1.0,))
    tokenizer = Tokenizer.from_file(tiny_checkpoint)

    def connect(url: str) -> RemoteEngine:
        return RemoteEngine(url, tokenizer=tokenizer, read_image=load_rgb)

    engine = start_managed(spec, connect, "managed")
    with killed_at_exit(lambda: engine.supervisor.status.pid):
        assert engine.capabilities.name == "managed" and "base" in engine.capabilities.modes
        before = ask(engine, "Hello")
        pid = engine.supervisor.status.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone(pid), "the kill")
        with pytest.raises(RetryableError, match="starting again") as down:
            ask(engine, "Hello")
        assert "127.0.0.1" not in str(down.value) and "conversation is kept" in str(down.value)
        wait_for(engine.supervisor.serving, "the restart")
        assert ask(engine, "Hello") == before
        engine.close()
        assert gone(pid) and not engine.supervisor.serving()


def start_parent(checkpoint: Path, folder: Path) -> tuple[subprocess.Popen[str], int]:
    """`supervise_parent.py` running a supervised server; returns it and the server's pid."""
    command = [sys.executable, str(REPO_ROOT / "tests" / "supervise_parent.py"), str(checkpoint)]
    command += [str(free_port()), str(folder / "data"), str(folder / "serve.log")]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"the parent did not start its server: {line!r}"
    return parent, int(line)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_server_is_left_behind_when_the_supervising_process_is_signalled(
    tiny_checkpoint: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    parent, server = start_parent(tiny_checkpoint, tmp_path)
    with killed_at_exit(lambda: server), killed_at_exit(lambda: parent.pid):
        assert psutil.Process(server).ppid() == parent.pid and not gone(server)
        parent.send_signal(sig)
        parent.wait(timeout=WAIT_S)
        wait_for(lambda: gone(server), f"the server's exit after the parent's {sig.name}")
        if sig == signal.SIGTERM:
            assert parent.returncode == 0 and parent.stdout is not None and "stopped" in parent.stdout.read()
