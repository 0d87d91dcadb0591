"""Settings: flags over IXC_* environment over defaults, their validation, and the app's exit on bad ones."""

from __future__ import annotations

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
    parse_settings,
    parse_size,
    prepare,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def test_native_engine_scheduler_settings_from_flags_or_environment() -> None:
    defaults = parse_settings([], {})
    assert (defaults.max_batch, defaults.prefill_chunk, defaults.compile) == (8, 1024, False)
    env = {"IXC_MAX_BATCH": "16", "IXC_PREFILL_CHUNK": "2048", "IXC_COMPILE": "1"}
    assert (lambda s: (s.max_batch, s.prefill_chunk, s.compile))(parse_settings([], env)) == (16, 2048, True)
    flags = parse_settings(["--max-batch", "2", "--prefill-chunk", "256", "--no-compile"], env)
    assert (flags.max_batch, flags.prefill_chunk, flags.compile) == (2, 256, False)
    with pytest.raises(ConfigError, match="IXC_MAX_BATCH"):
        parse_settings([], {"IXC_MAX_BATCH": "0"})
    with pytest.raises(ConfigError, match="--prefill-chunk"):
        parse_settings(["--prefill-chunk", "many"], {})


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


def test_prepare_keeps_a_stable_owner_only_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = parse_settings(["--data-dir", str(data)], {})
    first = prepare(settings)
    assert first.data_dir == data.resolve()
    secret_file = data / SECRET_FILE_NAME
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first.secret) >= 32
    assert prepare(settings).secret == first.secret
    given = prepare(parse_settings(["--data-dir", str(data), "--secret", "s3cr3t"], {}))
    assert given.secret == "s3cr3t"


def test_turbomind_settings_from_flags_or_environment() -> None:
    flags = ["--engine", "turbomind", "--lmdeploy-python", "/envs/lmdeploy/bin/python", "--tp", "2"]
    settings = parse_settings(flags, {"IXC_CACHE_MAX_ENTRY_COUNT": "0.5"})
    assert (settings.engine, settings.lmdeploy_python) == ("turbomind", "/envs/lmdeploy/bin/python")
    assert (settings.tp, settings.cache_max_entry_count) == (2, 0.5)
    assert parse_settings([], {"IXC_ENGINE": "auto"}).engine == "auto"
    defaults = parse_settings([], {})
    assert (defaults.engine, defaults.lmdeploy_python, defaults.tp, defaults.cache_max_entry_count) == (
        "native",
        "",
        1,
        0.8,
    )
    with pytest.raises(ConfigError, match=r"--cache-max-entry-count '1\.5' is not valid"):
        parse_settings(["--cache-max-entry-count", "1.5"], {})


def test_engine_and_server_settings() -> None:
    flags = ["--engine", "remote", "--engine-url", "http://gpu:23333", "--engine-read-timeout", "30"]
    settings = parse_settings(flags, {"IXC_ENGINE_API_KEY": "k", "IXC_API_KEYS": "a, b,,c"})
    assert (settings.engine, settings.engine_url, settings.engine_api_key) == (
        "remote",
        "http://gpu:23333",
        "k",
    )
    assert (settings.engine_read_timeout_s, settings.api_keys) == (30.0, ("a", "b", "c"))
    assert parse_settings(["--max-request-size", "1MB"], {}).max_request_bytes == 1024**2
    with pytest.raises(
        ConfigError,
        match="--engine 'turbo' is not valid: 'turbo' is not one of native, remote, turbomind, auto",
    ):
        parse_settings(["--engine", "turbo"], {})
    with pytest.raises(ConfigError, match="IXC_ENGINE_CONCURRENCY='0' is not valid"):
        parse_settings([], {"IXC_ENGINE_CONCURRENCY": "0"})


def test_settings_import_no_engine_and_no_torch() -> None:
    code = (
        "import sys, ixc_app.config\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torch', 'ixc_app.engines'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


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
