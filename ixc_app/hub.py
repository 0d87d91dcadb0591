"""The one place the app downloads anything: model weights from the Hugging Face Hub, when asked for.

Asking is naming a Hub repo as the model (`--model` / `IXC_MODEL` = `owner/name`, for example
`internlm/internlm-xcomposer2d5-7b`, as a Space sets it) where no such folder exists here. The weights then go
into the data dir (`models/owner--name`) on first start, with progress in the log, and later starts use that
folder without asking the Hub again (a marker file says the download finished; an interrupted one resumes).
A folder path, the default path and `tiny` never download anything, and neither does a start that would
not run the model (no CUDA GPU and no `--device cpu`: the demo model runs instead).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ixc_app.config import DEFAULT_MODEL, TINY_MODEL, ConfigError, Settings

log = logging.getLogger(__name__)

REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
COMPLETE_MARKER = ".ixc-download-complete"
PROGRESS_EVERY_S = 10.0

Download = Callable[[str, Path], None]
"""Fetches the repo's files into the folder (`snapshot`, or a test's fake)."""


def hub_repo(model: str) -> str | None:
    """The Hub repo `model` names, or None when it is a local path (existing, or not of the form owner/name),
    the default path or the demo model."""
    if model in (TINY_MODEL, DEFAULT_MODEL) or not REPO_ID.fullmatch(model):
        return None
    return None if Path(model).expanduser().exists() else model


def model_folder(data_dir: Path, repo: str) -> Path:
    return data_dir / "models" / repo.replace("/", "--")


class LoggedProgress(tqdm):  # type: ignore[misc]
    """A progress bar that also writes the download's progress to the log (a Space shows only the log),
    at most every `PROGRESS_EVERY_S` seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logged = time.monotonic()

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        now = time.monotonic()
        if now - self._logged >= PROGRESS_EVERY_S:
            self._logged = now
            log.info("%s", self)
        return shown


def snapshot(repo: str, folder: Path) -> None:
    """Download every file of `repo` into `folder` (resuming what an earlier try left)."""
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo, local_dir=folder, tqdm_class=LoggedProgress)


def fetch_model(settings: Settings, can_run: bool, download: Download | None = None) -> Settings:
    """Settings whose `model` is a local folder: the downloaded one when `settings.model` names a Hub repo.

    `download` defaults to `snapshot`. `can_run` says whether the real model would run here (a CUDA GPU, or
    `--device cpu`); without it nothing is downloaded and the model stays as given (the demo fallback or
    `--strict` then say why). A failed download is a `ConfigError` with the reason.
    """
    repo = hub_repo(settings.model)
    if repo is None:
        return settings
    if not can_run:
        log.warning(
            "not downloading %s: no CUDA GPU is visible, so it would not run here (pass --device cpu to "
            "download it and run it on the CPU)",
            repo,
        )
        return settings
    folder = model_folder(settings.data_dir, repo)
    if not (folder / COMPLETE_MARKER).is_file():
        log.info("downloading %s from the Hugging Face Hub into %s (first start only)", repo, folder)
        started = time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            (download or snapshot)(repo, folder)
        except Exception as exc:
            log.error("downloading %s failed: %r", repo, exc)
            raise ConfigError(
                f"The model {repo} could not be downloaded from the Hugging Face Hub ({type(exc).__name__}); "
                "check the repo name, the network and HF_TOKEN, or point IXC_MODEL at a local folder."
            ) from exc
        (folder / COMPLETE_MARKER).write_text(repo + "\n", encoding="utf-8")
        log.info("downloaded %s in %.0f s", repo, time.monotonic() - started)
    return replace(settings, model=str(folder))
