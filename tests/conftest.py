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


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> Iterator[Any]:
    """A native engine on the tiny checkpoint, shared by one test module's app."""
    from ixc_app.engines.native.engine import NativeEngine

    engine = NativeEngine.from_pretrained(tiny_checkpoint, is_demo_model=True)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, engine: Any) -> Iterator[Any]:
    """The real app launched in-process on the tiny checkpoint (see app_harness.py)."""
    from app_harness import app_settings, start_app

    running = start_app(app_settings(tmp_path_factory.mktemp("app"), tiny_checkpoint), engine)
    yield running
    running.close()
