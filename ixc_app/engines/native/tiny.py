"""Write a tiny IXC-2.5 checkpoint: the real architecture and file layout at toy sizes, seeded random weights.

It is what tests, CI and a CPU-only run of the app load, through exactly the code that loads the real model.
Parameter names and config.json keys are the official ones (plus a `vision_config` dict, since the real
config.json does not describe its CLIP tower), so the reference implementation can load the same files. The
vision crop stays 560 pixels with 14-pixel patches, so every image token count is the real one.

    python -m ixc_app.engines.native.tiny --out DIR [--tokenizer tokenizer.model] [--hidden-size 64 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import sentencepiece as spm
import torch
from safetensors.torch import save_file

from ixc_app.engines.native.config import ModelConfig, RopeScaling, VisionConfig
from ixc_app.engines.native.model import NativeModel
from ixc_app.ixc.tokenizer import SPECIAL_PIECES

DEFAULT_SIZES: dict[str, int] = {
    "hidden_size": 64,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "intermediate_size": 128,
    "vision_hidden_size": 32,
    "vision_layers": 2,
    "vision_heads": 2,
    "vision_intermediate_size": 64,
    "plora_rank": 256,
    "lora_rank": 8,
    "max_position_embeddings": 4096,
}
"""PLoRA rank 256 is the real one (the reference hard-codes it); everything else is toy-sized."""

TINY_VOCAB = 1000
STORE_DTYPE = torch.bfloat16
"""The real checkpoint's dtype; loading casts to whatever dtype is asked for."""

CORPUS = """\
The quick brown fox jumps over the lazy dog. A picture is worth a thousand words.
Please describe this image in detail. What is in the picture? There are two cats sleeping on a red sofa.
Write an article about the history of tea, with a title, an introduction and three sections.
The city skyline at night is full of lights; the river reflects the tall buildings and the bridge.
Here are some frames of a video. Describe this video in detail. A man rides a bicycle along the beach.
Image1 <ImageHere>; Image2 <ImageHere>; Compare the two images and list the differences.
You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔).
浦语·灵笔是一个多模态对话语言模型，由上海人工智能实验室开发。它能理解图像并用中文和英文流畅交流。
请列出下面的作文题目对应的写作大纲。根据下面的题目和写作大纲进行写作。这张图片里有什么？
给定文章，根据上述文章，选择适合插入图像的行。标题是“春天的公园”。最合适的图是A。
春天来了，公园里的花都开了，孩子们在草地上放风筝，老人们在湖边散步。
今天天气很好，我们一起去爬山吧。山上的风景非常美丽，空气也很新鲜。
Le chat dort sur le canapé rouge. Der Hund spielt im Garten. El sol brilla sobre el mar.
def greet(name: str) -> str:
    return f"Hello, {name}!"
# Heading
- item one, item two, item three: 1, 2, 3, 42, 2024, 3.14
"""


def corpus_lines() -> Iterator[str]:
    """The built-in text, repeated with small variations so the trainer sees enough sentences."""
    lines = [line for line in CORPUS.splitlines() if line.strip()]
    for n in range(40):
        for line in lines:
            yield f"{line} {n}" if n % 3 else line


def train_tokenizer(out: Path) -> None:
    """A small SentencePiece BPE model with the InternLM2 conventions and special pieces."""
    model = BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=corpus_lines(),
        model_writer=model,
        model_type="bpe",
        vocab_size=TINY_VOCAB,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=list(SPECIAL_PIECES),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    out.write_bytes(model.getvalue())


def random_state(model: NativeModel, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights at scales that keep activations finite, with every LoRA non-zero."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, param in model.state_dict().items():
        shape = param.shape
        noise = torch.randn(shape, generator=gen)
        if name.endswith("GN"):
            value = noise
        elif param.dim() == 1:
            is_norm_weight = name.endswith("weight") and "norm" in name
            value = 1.0 + 0.1 * noise if is_norm_weight else 0.1 * noise
        elif name.endswith(("tok_embeddings.weight", "position_embedding.weight")):
            value = noise
        else:
            value = noise / math.sqrt(math.prod(shape[1:]))
        state[name] = value.contiguous()
    return state


def reference_extras(config: ModelConfig) -> dict[str, torch.Tensor]:
    """Tensors the reference's CLIPVisionModel has but our tower never runs (identity `post_layernorm`)."""
    prefix = "vit.vision_tower.vision_model.post_layernorm."
    width = config.vision.hidden_size
    return {prefix + "weight": torch.ones(width), prefix + "bias": torch.zeros(width)}


def save_weights(state: dict[str, torch.Tensor], out: Path, fmt: str, shards: int) -> None:
    names = list(state)
    per_shard = math.ceil(len(names) / shards)
    groups = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    stem, suffix = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    weight_map = {}
    for i, group in enumerate(groups, start=1):
        file = f"{stem}.{suffix}" if len(groups) == 1 else f"{stem}-{i:05d}-of-{len(groups):05d}.{suffix}"
        part = {n: state[n] for n in group}
        if fmt == "safetensors":
            save_file(part, str(out / file), metadata={"format": "pt"})
        else:
            torch.save(part, out / file)
        weight_map.update(dict.fromkeys(group, file))
    if len(groups) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / f"{stem}.{suffix}.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def write_tiny_checkpoint(
    out: Path,
    tokenizer: Path | None = None,
    *,
    vocab_size: int | None = None,
    seed: int = 0,
    fmt: str = "safetensors",
    shards: int = 1,
    **sizes: int,
) -> Path:
    """Write the checkpoint folder `out` and return it. `sizes` overrides `DEFAULT_SIZES` by key."""
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown tiny checkpoint sizes: {sorted(unknown)}")
    if fmt not in ("safetensors", "bin") or shards < 1:
        raise ValueError(f"format must be safetensors or bin and shards at least 1, got {fmt!r}, {shards}")
    s = {**DEFAULT_SIZES, **sizes}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_path = out / "tokenizer.model"
    if tokenizer is not None:
        shutil.copyfile(tokenizer, tokenizer_path)
    else:
        train_tokenizer(tokenizer_path)
    pieces = spm.SentencePieceProcessor(model_file=str(tokenizer_path)).get_piece_size()
    if vocab_size is not None and vocab_size < pieces:
        raise ValueError(f"vocab size {vocab_size} is smaller than the tokenizer's {pieces} pieces")
    config = ModelConfig(
        vocab_size=vocab_size or pieces,
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        max_position_embeddings=s["max_position_embeddings"],
        rope_theta=1000000.0,
        rope_scaling=RopeScaling(type="dynamic", factor=2.0),
        rms_norm_eps=1e-5,
        bias=False,
        vision=VisionConfig(
            hidden_size=s["vision_hidden_size"],
            num_hidden_layers=s["vision_layers"],
            num_attention_heads=s["vision_heads"],
            intermediate_size=s["vision_intermediate_size"],
        ),
        plora_rank=s["plora_rank"],
        task_lora_ranks=dict.fromkeys(("lora_sft", "lora_dpo", "lora_web"), s["lora_rank"]),
    )
    state = random_state(NativeModel(config), seed) | reference_extras(config)
    save_weights({n: t.to(STORE_DTYPE) for n, t in state.items()}, out, fmt, shards)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "InternLMXComposer2Tokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the checkpoint into")
    parser.add_argument(
        "--tokenizer", type=Path, help="a real tokenizer.model to copy (default: train a small one)"
    )
    parser.add_argument("--vocab-size", type=int, help="default: the tokenizer's piece count")
    for key, value in DEFAULT_SIZES.items():
        flag = "--" + key.replace("_", "-")
        parser.add_argument(flag, dest=key, type=int, default=value, help=f"default {value}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("safetensors", "bin"), default="safetensors")
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = {key: getattr(args, key) for key in DEFAULT_SIZES}
    path = write_tiny_checkpoint(
        args.out,
        args.tokenizer,
        vocab_size=args.vocab_size,
        seed=args.seed,
        fmt=args.format,
        shards=args.shards,
        **sizes,
    )
    total = sum(f.stat().st_size for f in path.iterdir())
    print(f"wrote a tiny IXC-2.5 checkpoint to {path} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
