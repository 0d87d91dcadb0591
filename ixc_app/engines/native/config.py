"""The architecture settings of an IXC-2.5 checkpoint, read from its `config.json` and its tensor shapes.

`config.json` uses the official InternLM2 keys, with the reference configuration's defaults for keys a file
may leave out. The real checkpoint does not describe its CLIP tower (the reference builds it from a separate
repository), so ViT-L/14-560 is assumed unless the file carries a `vision_config` dict, an extension the tiny
checkpoint writes. LoRA ranks are not in `config.json` at all: they are read from the tensor shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TASK_LORAS: dict[str, tuple[str, ...]] = {"base": (), "write": ("lora_sft", "lora_dpo"), "web": ("lora_web",)}
"""Which task LoRAs each inference mode adds at every token (lmdeploy's merge tool folds the same sets)."""

REQUIRED_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


class ConfigError(ValueError):
    """config.json is missing a key or holds a value the model cannot use."""


@dataclass(frozen=True)
class RopeScaling:
    """`rope_scaling` of config.json: "dynamic" (NTK, how 2.5 reaches 96K tokens) or "linear"."""

    type: str
    factor: float


@dataclass(frozen=True)
class VisionConfig:
    """CLIP vision tower settings; the defaults are ViT-L/14 at 560x560 (`internlm-xcomposer2d5-clip`)."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    patch_size: int = 14
    image_size: int = 560
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    rms_norm_eps: float = 1e-6
    bias: bool = True
    vision: VisionConfig = field(default_factory=VisionConfig)
    plora_rank: int = 256
    plora_alpha: float = 256.0
    task_lora_ranks: dict[str, int] = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def plora_scale(self) -> float:
        return self.plora_alpha / self.plora_rank

    @property
    def modes(self) -> frozenset[str]:
        """Modes whose task LoRAs are all present; "base" needs none."""
        return frozenset(
            m for m, loras in TASK_LORAS.items() if all(n in self.task_lora_ranks for n in loras)
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise ConfigError(
                f"config.json lacks {', '.join(missing)}; it is not an InternLM2 configuration."
            )
        heads = int(raw["num_attention_heads"])
        kv_heads = int(raw.get("num_key_value_heads") or heads)
        hidden = int(raw["hidden_size"])
        if hidden % heads or heads % kv_heads:
            raise ConfigError(
                f"config.json has hidden_size {hidden}, {heads} heads and {kv_heads} KV heads, "
                "which do not divide."
            )
        scaling = raw.get("rope_scaling")
        rope_scaling = None
        if scaling:
            if scaling.get("type") not in ("dynamic", "linear"):
                raise ConfigError(
                    f"config.json rope_scaling type {scaling.get('type')!r} is not dynamic or linear."
                )
            rope_scaling = RopeScaling(type=scaling["type"], factor=float(scaling["factor"]))
        vision_fields = {f.name for f in dataclasses.fields(VisionConfig)}
        vision = VisionConfig(**{k: v for k, v in raw.get("vision_config", {}).items() if k in vision_fields})
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            rope_scaling=rope_scaling,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            bias=bool(raw.get("bias", True)),
            vision=vision,
            plora_alpha=float(raw.get("plora_alpha", 256.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The official config.json keys (as the reference configuration reads them) plus `vision_config`."""
        return {
            "architectures": ["InternLMXComposer2ForCausalLM"],
            "model_type": "internlmxcomposer2",
            "attn_implementation": "eager",
            "bias": self.bias,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_length": 16384,
            "max_position_embeddings": self.max_position_embeddings,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": dataclasses.asdict(self.rope_scaling) if self.rope_scaling else None,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "vocab_size": self.vocab_size,
            "plora_alpha": self.plora_alpha,
            "vision_config": dataclasses.asdict(self.vision),
        }
