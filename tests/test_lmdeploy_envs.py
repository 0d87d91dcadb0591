"""LMDeploy's environments: made once per pinned requirements file, found again, a broken build redone."""

from __future__ import annotations

from pathlib import Path

import pytest

from ixc_app import lmdeploy_envs
from ixc_app.lmdeploy_envs import READY_MARKER, SPECS, EnvSpec, EnvUnavailable, ensure, env_dir


def test_made_once_found_again_and_an_interrupted_build_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IXC_LMDEPLOY_ENVS", str(tmp_path / "cache"))
    requirements = tmp_path / "requirements-empty.txt"
    requirements.write_text("# nothing to install\n")
    spec = EnvSpec("empty", requirements, "a test environment with no packages")
    python = ensure(spec)
    assert python.is_file() and (env_dir(spec) / READY_MARKER).is_file()
    made = python.stat().st_mtime_ns
    assert ensure(spec) == python and python.stat().st_mtime_ns == made
    (env_dir(spec) / READY_MARKER).unlink()
    assert ensure(spec) == python and (env_dir(spec) / READY_MARKER).is_file()
    before = env_dir(spec)
    requirements.write_text("# changed pins make a new environment\n")
    assert env_dir(spec) != before


def test_a_failed_install_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IXC_LMDEPLOY_ENVS", str(tmp_path / "cache"))
    requirements = tmp_path / "requirements-bad.txt"
    requirements.write_text(str(tmp_path / "no-such-wheel-1.0-py3-none-any.whl") + "\n")
    with pytest.raises(EnvUnavailable, match="Making the bad environment failed") as failed:
        ensure(EnvSpec("bad", requirements, "a test environment that cannot be made"))
    assert not failed.value.offline
    assert not (env_dir(EnvSpec("bad", requirements, "")) / READY_MARKER).exists()


def test_every_pin_is_exact() -> None:
    for spec in SPECS.values():
        lines = [line.strip() for line in spec.requirements.read_text().splitlines()]
        pins = [line for line in lines if line and not line.startswith("#")]
        assert pins and all("==" in pin for pin in pins), spec.name


def test_the_engine_environment_is_made_only_when_named_and_refused_without_a_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It is several GB of CUDA wheels: `python -m ixc_app.lmdeploy_envs` (and `scripts/setup-lmdeploy-envs`)
    without names makes the others; `scripts/setup-lmdeploy` says plainly why it stops on a CPU machine.
    `ensure` is replaced by a fake that records what would be made (the real one is tested above)."""
    monkeypatch.setenv("IXC_LMDEPLOY_ENVS", str(tmp_path / "cache"))
    monkeypatch.setattr(lmdeploy_envs, "nvidia_driver_seen", lambda: False)
    made: list[str] = []

    def fake_ensure(spec: EnvSpec, quiet: bool = True) -> Path:
        made.append(spec.name)
        return tmp_path

    monkeypatch.setattr(lmdeploy_envs, "ensure", fake_ensure)
    assert lmdeploy_envs.main([]) == 0
    assert made == ["contract", "proxy"]
    assert lmdeploy_envs.main(["engine"]) == 1
    assert made == ["contract", "proxy"]
    assert "no NVIDIA driver on this machine" in capsys.readouterr().err
    assert lmdeploy_envs.find(SPECS["engine"]) is None
    assert lmdeploy_envs.main(["engine", "--force"]) == 0
    assert made[-1] == "engine"
