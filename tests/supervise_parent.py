"""A process that supervises `python -m ixc_app.serve` the way the app does, for the no-orphan tests.

Not a test module: `tests/test_supervisor.py` runs it as `python tests/supervise_parent.py CHECKPOINT PORT
DATA_DIR LOG`, reads the server's pid from its first line, then sends it SIGTERM or SIGKILL. On SIGTERM it
shuts down as `app.py` does (SIGTERM becomes KeyboardInterrupt, the engine is closed on the way out).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from ixc_app.supervisor import ProcessSpec, Supervisor


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    checkpoint, port, data_dir, log = sys.argv[1:5]
    command = (sys.executable, "-m", "ixc_app.serve", "--model", checkpoint, "--device", "cpu")
    command += ("--port", port, "--data-dir", data_dir)
    supervisor = Supervisor(ProcessSpec("serve", command, f"http://127.0.0.1:{port}/health", Path(log)))
    signal.signal(signal.SIGTERM, _interrupt)
    supervisor.start()
    print(supervisor.status.pid, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
