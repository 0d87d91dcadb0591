"""Which files make a checkpoint folder, known without importing torch.

The app decides whether the real model can run (or the demo checkpoint must) before it loads anything, and
`checkpoint.open_weights` opens exactly the weights this module finds, so the two never disagree.
"""

from __future__ import annotations

from pathlib import Path

WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
"""The weight files a checkpoint may have, in the order they are preferred when several are present."""


def weight_file(folder: Path) -> Path | None:
    """The weight file (or shard index) `checkpoint.open_weights` reads in `folder`, if any."""
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def looks_like_checkpoint(folder: Path) -> bool:
    """A folder with a `config.json` and weights (safetensors or .bin, single file or sharded)."""
    return (folder / "config.json").is_file() and weight_file(folder) is not None
