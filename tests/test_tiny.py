"""The tiny checkpoint: official layout and names, overridable sizes, seeded weights, a usable tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ixc_app.engines.native import NativeModel
from ixc_app.engines.native.tiny import main, write_tiny_checkpoint
from ixc_app.ixc.tokenizer import Tokenizer

LINEARS = ("attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3")
LORAS = ("Plora", "lora_sft", "lora_dpo", "lora_web")
OFFICIAL_CONFIG_KEYS = {
    "architectures",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rope_theta",
    "rope_scaling",
    "rms_norm_eps",
    "bias",
    "max_length",
}


def official_names(layers: int, vision_layers: int) -> set[str]:
    """The parameter names of internlm/internlm-xcomposer2d5-7b (plus CLIP's post_layernorm)."""
    names = {
        "model.tok_embeddings.weight",
        "model.norm.weight",
        "output.weight",
        "plora_glb_GN",
        "plora_sub_GN",
    }
    names |= {f"vision_proj.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    for i in range(layers):
        prefix = f"model.layers.{i}."
        names |= {prefix + "attention_norm.weight", prefix + "ffn_norm.weight"}
        for linear in LINEARS:
            names.add(f"{prefix}{linear}.weight")
            names |= {f"{prefix}{linear}.{lora}_{ab}.weight" for lora in LORAS for ab in "AB"}
    vm = "vit.vision_tower.vision_model."
    names |= {vm + "embeddings.class_embedding", vm + "embeddings.patch_embedding.weight"}
    names |= {vm + "embeddings.position_embedding.weight"}
    names |= {vm + f"{norm}.{p}" for norm in ("pre_layrnorm", "post_layernorm") for p in ("weight", "bias")}
    for j in range(vision_layers):
        layer = f"{vm}encoder.layers.{j}."
        modules = [f"self_attn.{m}" for m in ("q_proj", "k_proj", "v_proj", "out_proj")]
        modules += ["layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2"]
        names |= {f"{layer}{m}.{p}" for m in modules for p in ("weight", "bias")}
    return names


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("trained") / "ckpt")


def test_cli_writes_the_official_layout_with_the_requested_sizes(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    sizes = "--hidden-size 48 --layers 3 --heads 6 --kv-heads 2 --intermediate-size 80 --vocab-size 1100"
    vision = "--vision-hidden-size 24 --vision-layers 1 --vision-heads 3 --vision-intermediate-size 40"
    ranks = "--plora-rank 12 --lora-rank 5"
    tokenizer = str(trained / "tokenizer.model")
    main(["--out", str(out), "--tokenizer", tokenizer, *f"{sizes} {vision} {ranks}".split()])

    assert "wrote a tiny IXC-2.5 checkpoint" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "tokenizer.model",
        "tokenizer_config.json",
    }
    config = json.loads((out / "config.json").read_text())
    assert set(config) >= OFFICIAL_CONFIG_KEYS
    assert config["architectures"] == ["InternLMXComposer2ForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (48, 3, 1100)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"]) == (
        6,
        2,
        80,
    )
    assert config["vision_config"]["hidden_size"] == 24 and config["vision_config"]["image_size"] == 560

    state = load_file(out / "model.safetensors")
    assert set(state) == official_names(layers=3, vision_layers=1)
    assert state["model.layers.0.attention.wqkv.weight"].shape == ((6 + 2 * 2) * 8, 48)
    assert state["model.layers.2.feed_forward.w2.Plora_A.weight"].shape == (12, 80)
    assert state["model.layers.1.attention.wo.lora_web_B.weight"].shape == (48, 5)
    assert state["plora_sub_GN"].shape == (1, 1, 1, 96) and state["plora_glb_GN"].shape == (1, 1, 96)
    assert state["vision_proj.0.weight"].shape == (48, 96)
    assert state["vit.vision_tower.vision_model.embeddings.position_embedding.weight"].shape == (1601, 24)
    assert state["vit.vision_tower.vision_model.embeddings.patch_embedding.weight"].shape == (24, 3, 14, 14)

    model = NativeModel.from_pretrained(out)
    assert model.config.num_key_value_heads == 2 and model.config.vocab_size == 1100
    assert model.encode_image(torch.zeros(1, 3, 560, 560)).shape == (841, 48)


def test_every_lora_is_non_zero_so_tests_can_see_it(trained: Path) -> None:
    state = load_file(trained / "model.safetensors")
    loras = [name for name in state if "_B.weight" in name]
    assert len(loras) == 2 * 5 * 4
    assert all(state[name].abs().sum() > 0 for name in loras)
    assert all(t.dtype == torch.bfloat16 for t in state.values())


def test_the_seed_decides_the_weights(trained: Path, tmp_path: Path) -> None:
    same = load_file(
        write_tiny_checkpoint(tmp_path / "same", trained / "tokenizer.model") / "model.safetensors"
    )
    other = load_file(
        write_tiny_checkpoint(tmp_path / "other", trained / "tokenizer.model", seed=1) / "model.safetensors"
    )
    first = load_file(trained / "model.safetensors")

    assert all(torch.equal(first[name], same[name]) for name in first)
    assert not torch.equal(first["output.weight"], other["output.weight"])


def test_the_trained_tokenizer_follows_internlm2_conventions(trained: Path) -> None:
    tokenizer = Tokenizer.from_file(trained / "tokenizer.model")
    config = json.loads((trained / "config.json").read_text())

    assert (tokenizer.bos_id, tokenizer.eos_id) == (1, 2)
    assert tokenizer.vocab_size == config["vocab_size"] <= 1000
    turn_start, turn_end = tokenizer.token_id("[UNUSED_TOKEN_146]"), tokenizer.token_id("[UNUSED_TOKEN_145]")
    ids = tokenizer.encode("[UNUSED_TOKEN_146]user\nHello[UNUSED_TOKEN_145]\n", bos=True)
    assert ids[:2] == [1, turn_start] and turn_end in ids
    assert tokenizer.stop_ids == (2, turn_end)
    rare = "Hello 猫咪🐱 Ωμέγα ẞ"
    assert tokenizer.decode(tokenizer.encode(rare, bos=False)) == rare
    assert tokenizer.encode("Hello", bos=False) != tokenizer.encode(" Hello", bos=False)


def test_with_the_real_tokenizer(tiny_checkpoint: Path, real_tokenizer_path: Path) -> None:
    assert (tiny_checkpoint / "tokenizer.model").read_bytes() == real_tokenizer_path.read_bytes()
    assert json.loads((tiny_checkpoint / "config.json").read_text())["vocab_size"] == 92544
    assert sum(p.stat().st_size for p in tiny_checkpoint.iterdir()) < 40_000_000

    model = NativeModel.from_pretrained(tiny_checkpoint)
    assert model.supported_modes == frozenset({"base", "write", "web"})
    assert model.tokenizer.token_id("[UNUSED_TOKEN_146]") == 92543


def test_bad_sizes_are_refused(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        write_tiny_checkpoint(tmp_path / "a", trained / "tokenizer.model", vocab_size=10)
    with pytest.raises(ValueError, match="hiden_size"):
        write_tiny_checkpoint(tmp_path / "b", trained / "tokenizer.model", hiden_size=10)
