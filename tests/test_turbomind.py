"""The `lmdeploy serve api_server` command the TurboMind engine runs, checked against LMDeploy 0.7.3's own
argument parser (`tests/lmdeploy_cli.py`, in the contract environment, which `IXC_REQUIRE_LMDEPLOY=1` makes
required): the template named explicitly, the port on loopback, the run's key passed, the settings' sizes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import REPO_ROOT

from ixc_app.engines.turbomind import CHAT_TEMPLATE, ApiServerOptions, api_server_command

CLI = REPO_ROOT / "tests" / "lmdeploy_cli.py"


def parse_with_lmdeploy(python: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(CLI), *args], capture_output=True, text=True, timeout=120, check=False
    )


def options(python: Path) -> ApiServerOptions:
    return ApiServerOptions(
        python=python,
        model=Path("/data/models/internlm--internlm-xcomposer2d5-7b"),
        model_name="internlm-xcomposer2d5-7b",
        session_len=16384,
        cache_max_entry_count=0.5,
        tp=2,
        port=40123,
        log_level="info",
    )


def test_our_api_server_command_is_what_lmdeploy_073_parses(contract_python: Path) -> None:
    chosen = options(contract_python)
    command = api_server_command(chosen)
    assert command[:3] == (str(contract_python), "-m", "lmdeploy")
    lmdeploy = contract_python.parent.parent / "lib"
    assert any(lmdeploy.glob("python3*/site-packages/lmdeploy/__main__.py")), "python -m lmdeploy must run"
    done = parse_with_lmdeploy(contract_python, command[3:])
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert parsed["runs"] == "api_server"
    assert parsed["model_path"] == str(chosen.model) and parsed["backend"] == "turbomind"
    assert parsed["chat_template"] == CHAT_TEMPLATE == parsed["chat_template_name"] == "internlm-xcomposer2d5"
    assert parsed["builtin_template"] is True
    assert parsed["model_name"] == "internlm-xcomposer2d5-7b"
    assert (parsed["session_len"], parsed["cache_max_entry_count"], parsed["tp"]) == (16384, 0.5, 2)
    assert (parsed["server_name"], parsed["server_port"]) == ("127.0.0.1", 40123)
    assert parsed["api_keys"] == [chosen.api_key] and len(chosen.api_key) >= 24
    assert parsed["log_level"] == "INFO"


def test_lmdeploys_parser_refuses_what_it_does_not_know(contract_python: Path) -> None:
    """The check has teeth: a flag 0.7.3 lacks (or a misspelt one) fails its parser."""
    command = (*api_server_command(options(contract_python))[3:], "--no-such-flag")
    done = parse_with_lmdeploy(contract_python, command)
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr


def test_every_run_gets_its_own_key() -> None:
    python = Path("python")
    assert options(python).api_key != options(python).api_key
