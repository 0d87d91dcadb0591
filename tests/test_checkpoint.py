"""Loading checkpoints: every weight layout gives one model; an incomplete folder says what is missing."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ixc_app.engines.native import NativeModel
from ixc_app.engines.native.checkpoint import CheckpointError
from ixc_app.engines.native.config import ConfigError, ModelConfig, VisionConfig
from ixc_app.engines.native.tiny import write_tiny_checkpoint

DROPPED = "model.layers.1.feed_forward.w2.Plora_B.weight"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint with the small trained tokenizer (vocab 1000): cheap logits for many variants."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("small") / "safetensors")


def variant(small: Path, tmp_path: Path, name: str, **kwargs: object) -> Path:
    return write_tiny_checkpoint(tmp_path / name, small / "tokenizer.model", **kwargs)


def copy_of(small: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small, tmp_path / "copy"))


def probe_logits(model: NativeModel) -> torch.Tensor:
    ids = model.tokenizer.encode("Describe the picture, please.", bos=True)
    pixels = torch.randn(1, 3, 560, 560, generator=torch.Generator().manual_seed(0))
    image = model.encode_image(pixels)
    tail = model.embed_tokens(ids[1:])
    embeds = torch.cat([model.embed_tokens(ids), image, tail])
    im_mask = torch.zeros(embeds.shape[0], dtype=torch.bool)
    im_mask[len(ids) : len(ids) + image.shape[0]] = True
    return model.forward(embeds, im_mask, model.new_cache(embeds.shape[0]), "write")


def test_safetensors_and_bin_single_or_sharded_load_the_same_model(small: Path, tmp_path: Path) -> None:
    folders = {
        "safetensors": small,
        "safetensors-3": variant(small, tmp_path, "st3", shards=3),
        "bin": variant(small, tmp_path, "bin", fmt="bin"),
        "bin-3": variant(small, tmp_path, "bin3", fmt="bin", shards=3),
    }
    assert (folders["safetensors-3"] / "model.safetensors.index.json").is_file()
    assert (folders["safetensors-3"] / "model-00002-of-00003.safetensors").is_file()
    assert (folders["bin"] / "pytorch_model.bin").is_file()
    assert (folders["bin-3"] / "pytorch_model.bin.index.json").is_file()
    assert (folders["bin-3"] / "pytorch_model-00003-of-00003.bin").is_file()

    models = {name: NativeModel.from_pretrained(folder) for name, folder in folders.items()}
    reference = probe_logits(models["safetensors"])
    for name, model in models.items():
        assert model.supported_modes == frozenset({"base", "write", "web"}), name
        assert torch.equal(probe_logits(model), reference), name


def test_loaded_parameters_are_real_tensors_in_the_asked_dtype(small: Path) -> None:
    model = NativeModel.from_pretrained(small, dtype=torch.bfloat16)

    assert model.dtype == torch.bfloat16 and model.device == torch.device("cpu")
    for name, param in model.state_dict().items():
        assert param.device.type == "cpu" and param.dtype == torch.bfloat16, name
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_follow_float32(small: Path, dtype: torch.dtype) -> None:
    full = probe_logits(NativeModel.from_pretrained(small))
    half = probe_logits(NativeModel.from_pretrained(small, dtype=dtype))

    assert half.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: close in direction, not in value (a wrong cast would give ~0).
    similarity = torch.nn.functional.cosine_similarity(half, full, dim=-1)
    assert similarity.min() > 0.95


def test_a_missing_tensor_names_itself(small: Path, tmp_path: Path) -> None:
    folder = copy_of(small, tmp_path)
    state = load_file(folder / "model.safetensors")
    del state[DROPPED]
    save_file(state, folder / "model.safetensors")

    with pytest.raises(CheckpointError, match=re.escape(DROPPED)):
        NativeModel.from_pretrained(folder)


def test_a_tensor_listed_in_the_index_but_absent_from_its_shard_names_both(
    small: Path, tmp_path: Path
) -> None:
    folder = variant(small, tmp_path, "st3", shards=3)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shard = folder / index["weight_map"][DROPPED]
    state = load_file(shard)
    del state[DROPPED]
    save_file(state, shard)

    with pytest.raises(CheckpointError, match=re.escape(f"{DROPPED} in {shard.name}")):
        NativeModel.from_pretrained(folder)


def test_extra_tensors_are_ignored_but_never_hide_a_missing_one(
    small: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = copy_of(small, tmp_path)
    state = load_file(folder / "model.safetensors")
    state["vit.vision_tower.vision_model.embeddings.position_ids"] = torch.arange(1601)[None]
    save_file(state, folder / "model.safetensors")
    with caplog.at_level(logging.DEBUG, logger="ixc_app.engines.native.checkpoint"):
        NativeModel.from_pretrained(folder)
    assert "position_ids" in caplog.text

    del state[DROPPED]
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=re.escape(DROPPED)):
        NativeModel.from_pretrained(folder)


@pytest.mark.parametrize("missing", ["config.json", "tokenizer.model", "model.safetensors"])
def test_a_missing_file_is_named(small: Path, tmp_path: Path, missing: str) -> None:
    folder = copy_of(small, tmp_path)
    (folder / missing).unlink()

    with pytest.raises(CheckpointError, match=missing):
        NativeModel.from_pretrained(folder)


def test_a_missing_shard_is_named(small: Path, tmp_path: Path) -> None:
    folder = variant(small, tmp_path, "bin3", fmt="bin", shards=3)
    (folder / "pytorch_model-00002-of-00003.bin").unlink()

    with pytest.raises(CheckpointError, match=re.escape("pytorch_model-00002-of-00003.bin")):
        NativeModel.from_pretrained(folder)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere does not exist"):
        NativeModel.from_pretrained(tmp_path / "nowhere")


def test_a_shape_that_does_not_match_config_names_the_tensor(small: Path, tmp_path: Path) -> None:
    folder = copy_of(small, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] += 16
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(CheckpointError, match=r"model\.layers\.0\.feed_forward\.w1\.weight.*shape"):
        NativeModel.from_pretrained(folder)


def test_a_checkpoint_without_task_loras_declares_base_only(small: Path, tmp_path: Path) -> None:
    folder = copy_of(small, tmp_path)
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if ".lora_" not in k}, folder / "model.safetensors")

    model = NativeModel.from_pretrained(folder)

    assert model.supported_modes == frozenset({"base"})
    assert model.config.task_lora_ranks == {}


def test_ranks_come_from_tensor_shapes(small: Path, tmp_path: Path) -> None:
    folder = variant(small, tmp_path, "ranks", plora_rank=16, lora_rank=3)
    model = NativeModel.from_pretrained(folder)

    assert model.config.plora_rank == 16
    assert model.config.task_lora_ranks == {"lora_sft": 3, "lora_dpo": 3, "lora_web": 3}
    assert model.config.plora_scale == 256 / 16


def test_config_without_vision_config_means_vit_l_14_560() -> None:
    raw = {
        "vocab_size": 92544,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "rope_scaling": {"type": "dynamic", "factor": 2.0},
    }
    config = ModelConfig.from_dict(raw)

    assert config.vision == VisionConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16)
    assert (config.vision.patch_size, config.vision.image_size, config.vision.grid) == (14, 560, 40)
    assert config.head_dim == 128 and config.plora_scale == 1.0
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        ModelConfig.from_dict({k: v for k, v in raw.items() if k != "num_hidden_layers"})
