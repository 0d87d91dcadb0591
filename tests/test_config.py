"""Settings: flags over IXC_* environment over defaults, the demo-checkpoint fallback, and `--strict`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ixc_app.config import (
    OPTIONS,
    SECRET_FILE_NAME,
    ConfigError,
    Limits,
    Settings,
    build_parser,
    choose_model,
    parse_settings,
    parse_size,
    prepare,
)
from ixc_app.engines.native.layout import looks_like_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent


def fake_real_checkpoint(path: Path) -> Path:
    """Only the layout `choose_model` looks at (config + weights file), not loadable weights."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["InternLMXComposer2ForCausalLM"]}))
    (path / "model.safetensors.index.json").write_text("{}")
    return path


def test_defaults_without_flags_or_environment() -> None:
    settings = parse_settings([], {})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 7860
    assert settings.data_dir == Path("data")
    assert (settings.hd_num_single, settings.hd_num_multi) == (24, 6)
    assert settings.limits == Limits()
    assert not settings.strict


def test_environment_overrides_default_and_flag_overrides_environment() -> None:
    env = {"IXC_PORT": "9000", "IXC_HOST": "0.0.0.0", "IXC_MAX_UPLOAD_SIZE": "5MB", "IXC_HD_NUM_MULTI": "4"}
    from_env = parse_settings([], env)
    assert from_env.port == 9000
    assert from_env.host == "0.0.0.0"
    assert from_env.limits.max_upload_bytes == 5 * 1024 * 1024
    assert from_env.hd_num_multi == 4

    from_flags = parse_settings(["--port", "9100", "--max-upload-size", "1GB"], env)
    assert from_flags.port == 9100
    assert from_flags.limits.max_upload_bytes == 1024**3
    assert from_flags.host == "0.0.0.0"


def test_boolean_flag_wins_over_environment_both_ways() -> None:
    assert parse_settings([], {"IXC_STRICT": "1"}).strict
    assert not parse_settings(["--no-strict"], {"IXC_STRICT": "yes"}).strict
    assert parse_settings(["--strict"], {"IXC_STRICT": "0"}).strict


def test_every_limit_is_settable_from_the_environment() -> None:
    env = {
        "IXC_MAX_FILES_PER_MESSAGE": "3",
        "IXC_MAX_FILES_PER_CONVERSATION": "7",
        "IXC_MAX_IMAGE_PIXELS": "1000000",
        "IXC_MAX_VIDEO_SECONDS": "12.5",
        "IXC_MAX_TEXT_CHARS": "99",
        "IXC_MAX_NEW_TOKENS": "64",
        "IXC_CONTEXT_BUDGET": "2048",
    }
    assert parse_settings([], env).limits == Limits(
        max_files_per_message=3,
        max_files_per_conversation=7,
        max_image_pixels=1_000_000,
        max_video_seconds=12.5,
        max_text_chars=99,
        max_new_tokens=64,
        context_budget=2048,
    )


def test_engine_memory_budgets_are_sizes_from_flags_or_environment() -> None:
    defaults = parse_settings([], {})
    assert (defaults.kv_cache_budget_bytes, defaults.feature_cache_budget_bytes) == (4 * 1024**3, 1024**3)
    env = {"IXC_KV_CACHE_BUDGET": "8GB", "IXC_FEATURE_CACHE_BUDGET": "512MB"}
    from_env = parse_settings([], env)
    assert (from_env.kv_cache_budget_bytes, from_env.feature_cache_budget_bytes) == (
        8 * 1024**3,
        512 * 1024**2,
    )
    from_flags = parse_settings(["--kv-cache-budget", "1.5G", "--feature-cache-budget", "0"], env)
    assert (from_flags.kv_cache_budget_bytes, from_flags.feature_cache_budget_bytes) == (
        int(1.5 * 1024**3),
        0,
    )
    with pytest.raises(ConfigError, match="IXC_KV_CACHE_BUDGET"):
        parse_settings([], {"IXC_KV_CACHE_BUDGET": "plenty"})


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        ([], {"IXC_PORT": "eighty"}, "IXC_PORT"),
        (["--port", "70000"], {}, "--port"),
        ([], {"IXC_DEVICE": "tpu"}, "IXC_DEVICE"),
        ([], {"IXC_MAX_DATA_SIZE": "lots"}, "IXC_MAX_DATA_SIZE"),
        (["--max-files-per-message", "0"], {}, "--max-files-per-message"),
        ([], {"IXC_STRICT": "maybe"}, "IXC_STRICT"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_settings(argv, env)


def test_parse_size_units() -> None:
    assert parse_size("123") == 123
    assert parse_size("2KB") == 2048
    assert parse_size("1.5g") == int(1.5 * 1024**3)
    with pytest.raises(ValueError, match="not a size"):
        parse_size("10 parsecs")


def test_help_documents_every_flag_with_its_variable_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for opt in OPTIONS:
        assert opt.flag in text
        assert f"env {opt.env}; default {opt.shown_default}]" in text


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
    """The settings are imported by the UI, which must not pull in torch or the engine's model."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom ixc_app.config import choose_model, parse_settings\n"
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


@pytest.mark.parametrize(
    "argv", [["--engine", "lmdeploy"], ["--engine-url", "http://x:23333"], ["--lmdeploy-python", "/py"]]
)
def test_lmdeploy_options_are_not_available_yet(argv: list[str]) -> None:
    with pytest.raises(ConfigError, match="not available yet"):
        choose_model(parse_settings(argv, {}), cuda_available=True)


def test_prepare_writes_the_demo_checkpoint_once_and_keeps_a_stable_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = parse_settings(["--data-dir", str(data), "--model", str(tmp_path / "none")], {})
    first = prepare(settings, cuda_available=False)
    assert first.is_demo_model
    assert first.model_path == data.resolve() / "tiny-checkpoint"
    assert looks_like_checkpoint(first.model_path)
    assert (first.device, first.dtype) == ("cpu", "fp32")
    secret_file = data / SECRET_FILE_NAME
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first.secret) >= 32
    weights = first.model_path / "model.safetensors"
    written = weights.stat().st_mtime_ns

    second = prepare(settings, cuda_available=False)
    assert second.secret == first.secret
    assert weights.stat().st_mtime_ns == written

    given = prepare(
        parse_settings(["--data-dir", str(data), "--model", "tiny", "--secret", "s3cr3t"], {}), False
    )
    assert given.secret == "s3cr3t"


def test_prepare_does_not_touch_disk_when_strict_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = parse_settings(["--data-dir", str(data), "--model", str(tmp_path / "none"), "--strict"], {})
    with pytest.raises(ConfigError):
        prepare(settings, cuda_available=True)
    assert not data.exists()


def run_app(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IXC_")}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py"), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
        check=False,
    )


def test_app_exits_with_the_reason_when_strict_refuses(tmp_path: Path) -> None:
    result = run_app("--strict", "--model", str(tmp_path / "none"), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "--strict refuses the demo checkpoint because no checkpoint was found" in result.stderr
    assert not (tmp_path / "data").exists()


def test_app_exits_with_the_reason_on_a_bad_variable() -> None:
    result = run_app(env={"IXC_PORT": "seventy"})
    assert result.returncode == 2
    assert "IXC_PORT='seventy' is not valid" in result.stderr
