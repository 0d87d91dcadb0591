"""`benchmarks/bench_remote.py` stays runnable: one short pass of each of its measurements (the remote path's
added time to first token, throughput through one server and through the proxy). The figures themselves are
not asserted; the machine is shared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_the_remote_benchmark_runs_each_measurement(proxy_python: Path) -> None:
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "bench_remote.py"),
        "--runs",
        "1",
        "--tokens",
        "2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    for figure in ("added", "one server,  8 conversations", "proxy + two servers"):
        assert figure in result.stdout
