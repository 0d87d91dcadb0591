"""Gradio's copies of files, removed once the app is done with them, so the data dir's bound holds.

Gradio keeps every uploaded file in its cache (`GRADIO_TEMP_DIR`, the data dir's upload folder, in a folder
named after a hash of the content) and copies there every file it serves. Both outlive what the app keeps: a
raw upload once the media store has validated (and copied) or refused it, and the served copy of a deleted
conversation's picture, which would stay readable at its old address. They count against the bound while they
exist; these functions remove them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gradio import processing_utils


def upload_cache() -> Path:
    """Where Gradio keeps uploads and served copies (it reads the variable whenever it needs the folder)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def discard_uploads(paths: Iterable[str]) -> None:
    """Remove the raw uploads among `paths` (files elsewhere, such as the examples, are left alone)."""
    cache = upload_cache()
    for name in paths:
        path = Path(name).resolve()
        if path.is_relative_to(cache) and path.parent != cache:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the content folder, once nothing else is in it


def forget_served_copy(path: Path) -> None:
    """Remove Gradio's served copy of a media file that is about to be deleted."""
    with contextlib.suppress(OSError):
        shutil.rmtree(upload_cache() / processing_utils.hash_file(path))
