"""Which engine runs (`--engine auto`, `--engine turbomind`), and the download a Hub repo name asks for."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from test_bootstrap import fake_real_checkpoint

from ixc_app import hub
from ixc_app.bootstrap import choose_engine, cuda_available, start_engine
from ixc_app.config import ConfigError, parse_settings
from ixc_app.hub import COMPLETE_MARKER, fetch_model, hub_repo, model_folder


def test_auto_picks_turbomind_only_with_its_environment_a_gpu_and_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = fake_real_checkpoint(tmp_path / "ixc")
    settings = parse_settings(["--engine", "auto", "--model", str(checkpoint)], {})
    python = tmp_path / "env" / "bin" / "python"
    assert choose_engine(settings, True, python)[0] == "turbomind"
    engine, reason = choose_engine(settings, True, None)
    assert engine == "native" and "no LMDeploy environment" in reason and "scripts/setup-lmdeploy" in reason
    engine, reason = choose_engine(settings, False, python)
    assert engine == "native" and "no CUDA GPU" in reason
    tiny = parse_settings(["--engine", "auto", "--model", "tiny"], {})
    engine, reason = choose_engine(tiny, True, python)
    assert engine == "native" and "no checkpoint" in reason


def test_auto_on_this_machine_runs_native_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ixc_app.bootstrap")
    settings = parse_settings(["--engine", "auto", "--model", "tiny", "--data-dir", str(tmp_path)], {})
    settings, engine = start_engine(settings)
    try:
        assert engine.capabilities.name == "native" and settings.engine == "native"
        assert "--engine auto runs the native engine because" in caplog.text
    finally:
        engine.close()


def test_turbomind_without_its_environment_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IXC_LMDEPLOY_ENVS", str(tmp_path / "no-envs"))
    with pytest.raises(ConfigError, match=r"environment: make it with scripts/setup-lmdeploy"):
        start_engine(parse_settings(["--engine", "turbomind"], {}))
    missing = parse_settings(["--engine", "turbomind", "--lmdeploy-python", str(tmp_path / "nope")], {})
    with pytest.raises(ConfigError, match="is not a file"):
        start_engine(missing)


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA GPU")
def test_turbomind_without_a_gpu_says_so(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("")
    given = parse_settings(["--engine", "turbomind", "--lmdeploy-python", str(python)], {})
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        start_engine(given)


def test_only_an_owner_name_that_is_no_folder_here_is_a_hub_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "acme" / "local").mkdir(parents=True)
    assert hub_repo("internlm/internlm-xcomposer2d5-7b") == "internlm/internlm-xcomposer2d5-7b"
    locals_ = ("acme/local", "tiny", "models/internlm-xcomposer2d5-7b", "/abs/path", "./a/b", "a/b/c", "x")
    for local in locals_:
        assert hub_repo(local) is None, local


def test_a_local_path_never_downloads_and_a_repo_downloads_once(tmp_path: Path) -> None:
    """`fake_download` stands in for the Hub (the real one is `hub.snapshot`, tested offline below)."""
    calls: list[tuple[str, Path]] = []

    def fake_download(repo: str, folder: Path) -> None:
        calls.append((repo, folder))
        (folder / "config.json").write_text("{}")

    data = tmp_path / "data"
    for model in (str(fake_real_checkpoint(tmp_path / "ixc")), "tiny", "models/internlm-xcomposer2d5-7b"):
        settings = parse_settings(["--model", model, "--data-dir", str(data)], {})
        assert fetch_model(settings, True, fake_download) == settings
    repo = parse_settings(["--data-dir", str(data)], {"IXC_MODEL": "acme/ixc-7b"})
    assert fetch_model(repo, False, fake_download) == repo
    assert calls == []
    fetched = fetch_model(repo, True, fake_download)
    folder = model_folder(data, "acme/ixc-7b")
    assert fetched.model == str(folder) and calls == [("acme/ixc-7b", folder)]
    assert (folder / COMPLETE_MARKER).is_file() and (folder / "config.json").is_file()
    assert fetch_model(repo, True, fake_download).model == str(folder) and len(calls) == 1


def test_start_runs_the_model_a_repo_name_downloaded_into_the_data_dir(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hub is a fake that copies the tiny checkpoint (`fake_snapshot`); the engine then runs it as the
    real model, from the data dir."""

    def fake_snapshot(repo: str, folder: Path) -> None:
        shutil.copytree(tiny_checkpoint, folder, dirs_exist_ok=True)

    monkeypatch.setattr(hub, "snapshot", fake_snapshot)
    data = tmp_path / "data"
    settings = parse_settings(["--model", "acme/ixc-tiny", "--device", "cpu", "--data-dir", str(data)], {})
    settings, engine = start_engine(settings)
    try:
        assert settings.model == str(model_folder(data.resolve(), "acme/ixc-tiny"))
        assert not engine.capabilities.is_demo_model
    finally:
        engine.close()


def test_a_download_that_fails_is_one_sentence(tmp_path: Path) -> None:
    """The real `snapshot_download`, offline (HF_HUB_OFFLINE=1 in a fresh interpreter): no network is used."""
    code = (
        "import sys; from pathlib import Path; from ixc_app.config import parse_settings, ConfigError\n"
        "from ixc_app.hub import fetch_model\n"
        f"s = parse_settings(['--model', 'acme/no-such-model', '--data-dir', {str(tmp_path)!r}], {{}})\n"
        "try:\n    fetch_model(s, True)\nexcept ConfigError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "acme/no-such-model could not be downloaded from the Hugging Face Hub" in done.stdout
    assert not (model_folder(tmp_path, "acme/no-such-model") / COMPLETE_MARKER).exists()
