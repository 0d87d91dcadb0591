"""The composition root: which model runs (real, demo fallback, `--strict`), and the services around it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ixc_app.bootstrap import choose_model, ensure_tiny_checkpoint, start
from ixc_app.config import ConfigError, parse_settings
from ixc_app.engines.native.layout import looks_like_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent


def fake_real_checkpoint(path: Path) -> Path:
    """Only the layout `choose_model` looks at (config + weights file), not loadable weights."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["InternLMXComposer2ForCausalLM"]}))
    (path / "model.safetensors.index.json").write_text("{}")
    return path


def test_missing_checkpoint_falls_back_to_demo_and_says_why(tmp_path: Path) -> None:
    settings = parse_settings(["--model", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path)], {})
    choice = choose_model(settings, cuda_available=True)
    assert choice.is_demo_model
    assert choice.path == settings.tiny_checkpoint_dir
    assert "no checkpoint was found" in choice.reason
    assert (choice.device, choice.dtype) == ("cuda", "bf16")


def test_strict_refuses_the_fallback(tmp_path: Path) -> None:
    settings = parse_settings(["--model", str(tmp_path / "nowhere"), "--strict"], {})
    with pytest.raises(ConfigError, match="--strict refuses the demo checkpoint"):
        choose_model(settings, cuda_available=True)


def test_real_checkpoint_without_gpu_falls_back_unless_cpu_is_asked_for(tmp_path: Path) -> None:
    real = fake_real_checkpoint(tmp_path / "ixc")
    auto = parse_settings(["--model", str(real)], {})
    fallback = choose_model(auto, cuda_available=False)
    assert fallback.is_demo_model
    assert "no CUDA GPU" in fallback.reason
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        choose_model(parse_settings(["--model", str(real), "--strict"], {}), cuda_available=False)

    on_cpu = choose_model(parse_settings(["--model", str(real), "--device", "cpu"], {}), cuda_available=False)
    assert not on_cpu.is_demo_model
    assert (on_cpu.path, on_cpu.device, on_cpu.dtype) == (real, "cpu", "fp32")

    on_gpu = choose_model(auto, cuda_available=True)
    assert not on_gpu.is_demo_model
    assert (on_gpu.path, on_gpu.device, on_gpu.dtype) == (real, "cuda", "bf16")


def test_a_folder_the_loader_would_reject_is_not_taken_for_a_checkpoint(tmp_path: Path) -> None:
    """A stray .safetensors is no checkpoint: choosing it would make the app fail instead of falling back."""
    from ixc_app.engines.native.checkpoint import CheckpointError, open_weights

    folder = tmp_path / "ixc"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "adapter.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="has none of"):
        open_weights(folder)
    assert not looks_like_checkpoint(folder)
    choice = choose_model(
        parse_settings(["--model", str(folder), "--device", "cpu"], {}), cuda_available=False
    )
    assert choice.is_demo_model
    assert "no checkpoint was found" in choice.reason


def test_choosing_the_model_loads_no_torch(tmp_path: Path) -> None:
    """Deciding whether the real model can run must not load torch or the engine's model."""
    code = (
        "import sys\nfrom ixc_app.bootstrap import choose_model\nfrom ixc_app.config import parse_settings\n"
        f"choose_model(parse_settings(['--model', {str(tmp_path)!r}], {{}}), cuda_available=False)\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_tiny_is_an_explicit_choice_that_strict_accepts() -> None:
    choice = choose_model(parse_settings(["--model", "tiny", "--strict"], {}), cuda_available=False)
    assert choice.is_demo_model
    assert "--model tiny" in choice.reason


def test_cuda_requested_without_gpu_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        choose_model(parse_settings(["--device", "cuda"], {}), cuda_available=False)


def test_the_demo_checkpoint_is_written_once(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-checkpoint"
    ensure_tiny_checkpoint(folder)
    assert looks_like_checkpoint(folder)
    weights = folder / "model.safetensors"
    written = weights.stat().st_mtime_ns
    ensure_tiny_checkpoint(folder)
    assert weights.stat().st_mtime_ns == written


def test_start_does_not_touch_disk_when_strict_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = parse_settings(["--data-dir", str(data), "--model", str(tmp_path / "none"), "--strict"], {})
    with pytest.raises(ConfigError):
        start(settings)
    assert not data.exists()


def test_start_runs_the_demo_checkpoint_from_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    argv = ["--data-dir", str(data), "--model", str(tmp_path / "none"), "--max-batch", "3", "--compile"]
    services = start(parse_settings([*argv, "--prefill-chunk", "128"], {}))
    try:
        assert services.settings.data_dir == data.resolve()
        assert services.engine.capabilities.is_demo_model
        assert services.engine.capabilities.max_concurrency == 3
        scheduler = services.engine.scheduler  # type: ignore[attr-defined]
        assert (scheduler.batch_limit, scheduler.prefill_chunk) == (3, 128)
        from ixc_app.engines.native.model import DecoderLayer

        assert scheduler.model.decode_layer is DecoderLayer.__call__, "--compile is ignored on the CPU"
        assert looks_like_checkpoint(data.resolve() / "tiny-checkpoint")
        assert services.chat.tokenizer is services.engine.tokenizer
    finally:
        services.close()
