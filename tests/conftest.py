"""Shared fixtures.

`shared_dir` is the one way tests reach `../shared` (the real tokenizer and specs). Where the folder is absent
(a user's own clone) those tests skip with the reason; CI sets IXC_REQUIRE_SHARED=1 and then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("IXC_SHARED_DIR", REPO_ROOT.parent / "shared"))


def _missing(what: str) -> None:
    reason = f"{what} not found (the project's ../shared folder is absent)"
    if os.environ.get("IXC_REQUIRE_SHARED") == "1":
        pytest.fail(f"{reason}; IXC_REQUIRE_SHARED=1 makes it required", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        _missing(str(SHARED_DIR))
    return SHARED_DIR


@pytest.fixture(scope="session")
def real_tokenizer_path(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "internlm2" / "tokenizer.model"
    if not path.is_file():
        _missing(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, real_tokenizer_path: Path) -> Path:
    """The tiny random-weight IXC-2.5 checkpoint with the real tokenizer, written once per test session."""
    # Imported here so that test modules that never touch the model do not pay for importing torch.
    from ixc_app.engines.native.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint", real_tokenizer_path)


TEST_KV_CACHE_BUDGET = 256 * 1024**2
TEST_FEATURE_CACHE_BUDGET = 64 * 1024**2
"""Engine memory budgets for the tiny checkpoint: far more than its tests fill."""
TEST_BATCH_LIMIT = 8
TEST_PREFILL_CHUNK = 1024
"""The app's defaults (`Settings`)."""


def native_engine(source: Any, **options: Any) -> Any:
    """A native engine on a loaded `NativeModel` or a checkpoint folder, reading images as the app does.

    `options` override the test budgets and scheduler sizes and pass anything else (`context_length`,
    `is_demo_model`) through.
    """
    from ixc_app.engines.native.engine import NativeEngine
    from ixc_app.media import load_rgb

    kwargs = {
        "read_image": load_rgb,
        "cache_budget_bytes": TEST_KV_CACHE_BUDGET,
        "feature_cache_bytes": TEST_FEATURE_CACHE_BUDGET,
        "batch_limit": TEST_BATCH_LIMIT,
        "prefill_chunk": TEST_PREFILL_CHUNK,
        **options,
    }
    if isinstance(source, Path):
        return NativeEngine.from_pretrained(source, **kwargs)
    return NativeEngine(source, **kwargs)


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> Iterator[Any]:
    """A native engine on the tiny checkpoint, shared by one test module's app."""
    engine = native_engine(tiny_checkpoint, is_demo_model=True)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[Any]:
    """The real app launched in-process on the tiny checkpoint (see app_harness.py)."""
    from app_harness import app_settings, start_app

    running = start_app(app_settings(tmp_path_factory.mktemp("app")), engine)
    yield running
    running.close()


def lmdeploy_python(name: str) -> Path:
    """The python of one of LMDeploy's environments (`ixc_app.lmdeploy_envs`), made on first use.

    Where the package registry cannot be reached the test skips with the reason; IXC_REQUIRE_LMDEPLOY=1
    makes that a failure (CI builds the environments). Any other failure to make one fails the test.
    """
    from ixc_app.lmdeploy_envs import SPECS, EnvUnavailable, ensure

    try:
        return ensure(SPECS[name])
    except EnvUnavailable as exc:
        if exc.offline and os.environ.get("IXC_REQUIRE_LMDEPLOY") != "1":
            pytest.skip(f"the lmdeploy {name} environment cannot be made, the registry is unreachable: {exc}")
        raise


@pytest.fixture(scope="session")
def contract_python() -> Path:
    return lmdeploy_python("contract")


@pytest.fixture(scope="session")
def proxy_python() -> Path:
    return lmdeploy_python("proxy")


def prompt_of(request: Any, tokenizer: Any) -> Any:
    """Our template's prompt for an engine `Request`, as the native engine builds it."""
    from ixc_app.ixc.template import build_prompt

    return build_prompt(
        request.turns,
        tokenizer,
        meta_instruction=request.meta_instruction,
        prefill=request.prefill,
        hd_num_single=request.hd_num_single,
        hd_num_multi=request.hd_num_multi,
        first_image=request.first_image,
    )
