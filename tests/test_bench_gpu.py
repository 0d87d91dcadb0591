"""`benchmarks/bench_gpu.py` stays runnable where there is no GPU: its `--tiny` mode runs every measurement
on the CPU (CI has no GPU; the full-size run needs one)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_the_gpu_benchmark_runs_its_tiny_sizes_on_the_cpu() -> None:
    args = ["--tiny", "--steps", "2", "--context", "16", "--prefill", "32", "--crops", "1"]
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_gpu.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for figure in ("prefill, 32 positions", "through the vision tower", "decode, batch 1", "decode, batch 8"):
        assert figure in out
    assert "ratio" in out.splitlines()[-2]
