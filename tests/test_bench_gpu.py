"""`benchmarks/bench_gpu.py` stays runnable where there is no GPU: its `--tiny` mode runs every measurement
on the CPU (CI has no GPU; the full-size run needs one)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT


def run_bench(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_gpu.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=env)


def test_the_gpu_benchmark_runs_its_tiny_sizes_on_the_cpu() -> None:
    result = run_bench(["--tiny", "--steps", "2", "--context", "16", "--prefill", "32", "--crops", "1"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for figure in ("prefill, 32 positions", "through the vision tower", "decode, batch 1", "decode, batch 8"):
        assert figure in out
    assert "ratio" in out.splitlines()[-2]


def test_the_turbomind_mode_says_plainly_when_it_cannot_run(tmp_path: Path) -> None:
    """No LMDeploy environment, no checkpoint at `--model` (and here no GPU): it measures nothing."""
    args = ["--turbomind", "--tiny", "--model", str(tmp_path / "no-checkpoint")]
    env = {**os.environ, "IXC_LMDEPLOY_ENVS": str(tmp_path / "no-envs")}
    result = run_bench(args, env)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("TurboMind cannot run here: ") and "nothing was measured" in result.stdout
    assert "tokens/s" not in result.stdout


def test_the_turbomind_figures_are_measured_through_the_engine_protocol(engine: Any) -> None:
    """What `--turbomind` measures through the managed server, run here on the native tiny engine (any
    `Engine` answers the same calls), so the measuring code itself is exercised without a GPU."""
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO_ROOT / "benchmarks" / "bench_gpu.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert len(engine.tokenizer.encode(bench.text_of(engine, 40, 1), bos=False)) >= 40
    assert bench.text_of(engine, 40, 1) != bench.text_of(engine, 40, 2)
    assert bench.server_prefill_rate(engine, 32) > 0
    assert bench.server_decode_rate(engine, 2, 16, 4) > 0
