"""Reading an IXC-2.5 checkpoint folder: config.json, safetensors or `.bin` weights (single or sharded).

Tensors are looked up by their official names and placed straight into a model built on the meta device, so
the 7B model is allocated once, in the requested dtype, on the requested device. Nothing is imported from
transformers and no code from the checkpoint folder runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from ixc_app.engines.base import EngineUnavailable
from ixc_app.engines.native.config import TASK_LORAS, ConfigError, ModelConfig
from ixc_app.engines.native.layout import WEIGHT_FILES, weight_file

log = logging.getLogger(__name__)

RANK_PROBE = "model.layers.0.attention.wqkv.{}_A.weight"
"""The tensor whose first dimension gives a LoRA's rank (the same rank is used by every linear)."""


class CheckpointError(EngineUnavailable):
    """The checkpoint folder is incomplete or does not match the architecture."""


def require_file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise CheckpointError(
            f"The checkpoint folder {folder} has no {name}; copy the complete checkpoint there."
        )
    return path


class _SafetensorsShard:
    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._names = set(handle.keys())

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(name).get_shape())

    def get(self, name: str) -> torch.Tensor:
        return self._handle.get_tensor(name)


class _BinShard:
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self._tensors = tensors

    def __contains__(self, name: str) -> bool:
        return name in self._tensors

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def get(self, name: str) -> torch.Tensor:
        return self._tensors[name]


class WeightSource:
    """Name -> tensor access over the checkpoint's weight files, opened lazily and closed by `close()`."""

    def __init__(self, folder: Path, files: dict[str, Path]) -> None:
        self.folder = folder
        self._file_of = files
        self._stack = ExitStack()
        self._open: dict[Path, _SafetensorsShard | _BinShard] = {}

    @property
    def names(self) -> set[str]:
        return set(self._file_of)

    def _shard(self, name: str) -> _SafetensorsShard | _BinShard:
        if name not in self._file_of:
            raise CheckpointError(f"The checkpoint in {self.folder} lacks the tensor {name}.")
        path = self._file_of[name]
        if path not in self._open:
            if path.suffix == ".safetensors":
                handle = self._stack.enter_context(safe_open(str(path), framework="pt"))
                self._open[path] = _SafetensorsShard(handle)
            else:
                self._open[path] = _BinShard(_load_bin(path))
        shard = self._open[path]
        if name not in shard:
            raise self._absent(name)
        return shard

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shard(name).shape(name)

    def get(self, name: str) -> torch.Tensor:
        return self._shard(name).get(name)

    def _absent(self, name: str) -> CheckpointError:
        return CheckpointError(
            f"The checkpoint in {self.folder} lists the tensor {name} in {self._file_of[name].name}, "
            "but that file does not hold it."
        )

    def close(self) -> None:
        self._stack.close()
        self._open.clear()

    def __enter__(self) -> WeightSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Files saved before torch's zip format cannot be memory-mapped; read them whole.
        return torch.load(path, map_location="cpu", weights_only=True)


def _index_files(folder: Path, index_name: str) -> dict[str, Path]:
    weight_map = json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"]
    files = {name: folder / shard for name, shard in weight_map.items()}
    for shard in sorted({p.name for p in files.values()}):
        require_file(folder, shard)
    return files


def open_weights(folder: Path) -> WeightSource:
    """The weights of a checkpoint folder: the file `layout.weight_file` finds, or the shards it indexes."""
    if not folder.is_dir():
        raise CheckpointError(f"The checkpoint folder {folder} does not exist.")
    path = weight_file(folder)
    if path is None:
        raise CheckpointError(
            f"The checkpoint folder {folder} has none of {', '.join(WEIGHT_FILES)}; "
            "copy the complete checkpoint there."
        )
    if path.name.endswith(".index.json"):
        return WeightSource(folder, _index_files(folder, path.name))
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
    else:
        names = list(_load_bin(path))
    return WeightSource(folder, dict.fromkeys(names, path))


def read_config(folder: Path, weights: WeightSource) -> ModelConfig:
    """config.json, with the LoRA ranks read from the tensor shapes (config.json does not state them)."""
    raw = json.loads(require_file(folder, "config.json").read_text(encoding="utf-8"))
    try:
        config = ModelConfig.from_dict(raw)
    except ConfigError as exc:
        raise CheckpointError(f"{folder}: {exc}") from exc
    task_ranks = {
        name: weights.shape(RANK_PROBE.format(name))[0]
        for loras in TASK_LORAS.values()
        for name in loras
        if RANK_PROBE.format(name) in weights.names
    }
    plora_rank = weights.shape(RANK_PROBE.format("Plora"))[0]
    return dataclasses.replace(config, plora_rank=plora_rank, task_lora_ranks=task_ranks)


def load_weights(model: nn.Module, weights: WeightSource, device: torch.device, dtype: torch.dtype) -> None:
    """Fill a meta-device model with the checkpoint's tensors, checked by name and shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - weights.names)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"The checkpoint in {weights.folder} lacks the tensor {missing[0]}{more}.")
    extra = weights.names - set(expected)
    if extra:
        log.debug("ignoring %d checkpoint tensors the model does not use: %s", len(extra), sorted(extra)[:8])
    state = {}
    for name, meta in expected.items():
        tensor = weights.get(name)
        if tensor.shape != meta.shape:
            raise CheckpointError(
                f"The tensor {name} in {weights.folder} has shape {tuple(tensor.shape)}, "
                f"but config.json implies {tuple(meta.shape)}."
            )
        state[name] = tensor.to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
