"""LMDeploy's own Python environments, kept apart from the app's and made once per pinned requirements file.

LMDeploy cannot share the app's environment (spec section 6: its huggingface-hub and numpy ranges clash with
gradio 6), and the releases we need differ by use: 0.7.3 for IXC-2.5 itself (the TurboMind engine,
"engine", with torch for CUDA 12; its chat template and command line in the contract tests, "contract",
without torch), a later, model-agnostic release for the proxy. Each environment is a
virtualenv in a cache folder outside the repository, named after its requirements file and the hash of that
file's text, so changing a pin makes a new one and an unchanged file is reused. Every requirements file lists
its whole dependency closure with exact versions and is installed with `--no-deps`: lmdeploy's own metadata
both over-constrains (torch <= 2.6 even for the proxy) and under-declares (it imports `aiohttp` and
`partial-json-parser` without naming them).

    python -m ixc_app.lmdeploy_envs proxy contract    # make them (idempotent) and print their python paths
    python -m ixc_app.lmdeploy_envs engine            # TurboMind's (several GB): scripts/setup-lmdeploy

`IXC_LMDEPLOY_ENVS` moves the cache (default `~/.cache/ixc-studio/lmdeploy-envs`). Making is locked per
environment, so parallel test sessions wait for one build instead of racing.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_MARKER = ".ixc-ready"
_NETWORK_SIGNS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found",
    "Could not fetch URL",
    "ConnectTimeoutError",
)


class EnvUnavailable(RuntimeError):
    """An environment could not be made; `offline` says the package registry could not be reached."""

    def __init__(self, message: str, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


@dataclass(frozen=True)
class EnvSpec:
    """One environment: its name, its pinned requirements file, what it is for."""

    name: str
    requirements: Path
    purpose: str
    needs_cuda: bool = False
    """Only of use with a CUDA GPU: made only when named, and refused where no NVIDIA driver is seen unless
    forced (an image is built without a GPU)."""

    def digest(self) -> str:
        return hashlib.sha256(self.requirements.read_bytes()).hexdigest()[:12]


SPECS = {
    "engine": EnvSpec(
        "engine",
        REPO_ROOT / "requirements-lmdeploy.txt",
        "lmdeploy 0.7.3 with torch 2.6 for CUDA 12: the TurboMind engine's api_server (--engine turbomind)",
        needs_cuda=True,
    ),
    "contract": EnvSpec(
        "contract",
        REPO_ROOT / "requirements-lmdeploy-contract.txt",
        "lmdeploy 0.7.3's chat template and xcomposer2 message code, for the contract tests (no torch)",
    ),
    "proxy": EnvSpec(
        "proxy",
        REPO_ROOT / "requirements-lmdeploy-proxy.txt",
        "lmdeploy serve proxy (a later release that honours AIOHTTP_TIMEOUT)",
    ),
}


def cache_dir() -> Path:
    configured = os.environ.get("IXC_LMDEPLOY_ENVS")
    return (
        Path(configured).expanduser()
        if configured
        else Path.home() / ".cache" / "ixc-studio" / "lmdeploy-envs"
    )


def env_dir(spec: EnvSpec) -> Path:
    return cache_dir() / f"{spec.name}-{spec.digest()}"


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def find(spec: EnvSpec) -> Path | None:
    """The environment's python if it is made and ready, without making it."""
    env = env_dir(spec)
    return python_of(env) if (env / READY_MARKER).is_file() else None


def nvidia_driver_seen() -> bool:
    """An NVIDIA driver is loaded here (what TurboMind needs; no torch is imported to ask)."""
    return Path("/proc/driver/nvidia/version").is_file() or shutil.which("nvidia-smi") is not None


def ensure(spec: EnvSpec, quiet: bool = True) -> Path:
    """The environment's python, making the environment first if it is not ready.

    A folder without the ready marker is a build that was interrupted: it is removed and made again. Raises
    `EnvUnavailable` (with `offline` set when pip could not reach the registry).
    """
    env = env_dir(spec)
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f"{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (env / READY_MARKER).is_file():
            return python_of(env)
        shutil.rmtree(env, ignore_errors=True)
        _build(spec, env, quiet)
        (env / READY_MARKER).write_text(spec.digest() + "\n", encoding="utf-8")
    return python_of(env)


def _build(spec: EnvSpec, env: Path, quiet: bool) -> None:
    # A venv's scripts hold its absolute path, so it is built where it stays; the marker comes last. The
    # app's own pip installs into it (`--python`), which saves bootstrapping a pip in every environment.
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], spec)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python_of(env)),
        "install",
        "--disable-pip-version-check",
    ]
    _run(
        [*pip, "--no-input", *(["--quiet"] if quiet else []), "--no-deps", "-r", str(spec.requirements)], spec
    )


def _run(command: Sequence[str], spec: EnvSpec) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    output = (done.stdout + done.stderr).strip()
    offline = any(sign in output for sign in _NETWORK_SIGNS)
    tail = "\n".join(output.splitlines()[-15:])
    raise EnvUnavailable(
        f"Making the {spec.name} environment failed ({' '.join(command[:4])} ...):\n{tail}", offline=offline
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ixc_app.lmdeploy_envs",
        description="Make LMDeploy's separate environments (idempotent) and print their python paths.",
    )
    default = [name for name, spec in SPECS.items() if not spec.needs_cuda]
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(SPECS)} (default: {' '.join(default)})"
    )
    parser.add_argument("--verbose", action="store_true", help="show pip's output")
    parser.add_argument("--force", action="store_true", help="make a CUDA environment without a GPU here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in SPECS]
    if unknown:
        parser.error(f"unknown environment {unknown[0]!r}; choose from {', '.join(SPECS)}")
    for name in args.names or default:
        spec = SPECS[name]
        print(f"{name}: {spec.purpose}", file=sys.stderr)
        if spec.needs_cuda and not args.force and not nvidia_driver_seen():
            print(
                f"error: no NVIDIA driver on this machine, so the {name} environment (several GB) would be "
                "of no use here: TurboMind needs a CUDA 12 GPU. Run the app with --engine native, or pass "
                "--force to make it anyway (to build an image for a GPU machine).",
                file=sys.stderr,
            )
            return 1
        try:
            print(ensure(spec, quiet=not args.verbose))
        except EnvUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
