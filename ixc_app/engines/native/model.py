"""IXC-2.5 in plain PyTorch: InternLM2 with Partial LoRA and task LoRAs, the CLIP tower and the projector.

Batch size is one and tensors are [tokens, features]: the app serves one conversation per forward pass, and
the KV cache of a conversation is what makes follow-up turns cheap, not batching.

Rotary positions: with `rope_scaling` "dynamic", once the total length L (cached + new tokens) exceeds
`max_position_embeddings`, the new tokens are rotated with base' = base * (factor*L/max_pos - (factor-1)) **
(d/(d-2)) for that L, while cached keys keep the rotation they were stored with. The reference does the same
during generation (its rotary cache is rebuilt for every longer length; keys already in the cache are never
re-rotated). One difference: the reference keeps its enlarged table for later, shorter requests; here every
forward pass uses the base of its own total length, so results do not depend on earlier requests. A
consequence in both: beyond `max_position_embeddings`, prefilling a prompt in two chunks rotates the first
chunk with a smaller base than one prefill of the whole prompt would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ixc_app.engines.base import BadRequest, ContextTooLong
from ixc_app.engines.native import checkpoint
from ixc_app.engines.native.config import TASK_LORAS, ModelConfig
from ixc_app.engines.native.vision import Table, VisionTower, layout_tokens, split_views
from ixc_app.ixc.prompt import ImageSegment, Prompt, TextSegment
from ixc_app.ixc.tokenizer import Tokenizer

ImageRows = slice | Tensor | None
"""Which rows of a chunk are image tokens: none, all (`slice(None)`), or their indices."""


def image_rows(im_mask: Tensor | None, device: torch.device) -> ImageRows:
    """The rows of `im_mask` (None: no image rows), read on the CPU so text never waits for the device."""
    if im_mask is None:
        return None
    mask = im_mask.cpu()
    if bool(mask.all()):
        return slice(None)
    if not bool(mask.any()):
        return None
    return mask.nonzero().squeeze(1).to(device)


def rope_base(cfg: ModelConfig, total_len: int) -> float:
    """The rotary base for a sequence of `total_len` tokens (dynamic NTK grows it past max_pos)."""
    scaling, max_pos, dim = cfg.rope_scaling, cfg.max_position_embeddings, cfg.head_dim
    if scaling is None or scaling.type != "dynamic" or total_len <= max_pos:
        return cfg.rope_theta
    return cfg.rope_theta * ((scaling.factor * total_len / max_pos) - (scaling.factor - 1)) ** (
        dim / (dim - 2)
    )


def rope_tables(cfg: ModelConfig, start: int, count: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin [count, head_dim] (float32) for positions start .. start+count-1."""
    dim = cfg.head_dim
    inv_freq = 1.0 / (rope_base(cfg, start + count) ** (torch.arange(0, dim, 2, device=device).float() / dim))
    positions = torch.arange(start, start + count, device=device, dtype=torch.float32)
    if cfg.rope_scaling is not None and cfg.rope_scaling.type == "linear":
        positions = positions / cfg.rope_scaling.factor
    freqs = torch.outer(positions, inv_freq)
    angles = torch.cat([freqs, freqs], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x [tokens, heads, head_dim] in the half-split layout InternLM2 uses."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]


@dataclass
class KVCache:
    """Per-layer keys and values [kv_heads, capacity, head_dim]; the first `length` positions are valid.

    Buffers grow geometrically up to `max_tokens`, so a short conversation does not hold a whole context's
    memory. `truncate` rolls the conversation back (regenerate, edit) without freeing anything.
    """

    keys: list[Tensor]
    values: list[Tensor]
    max_tokens: int
    length: int = 0

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[1]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def truncate(self, n: int) -> None:
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} tokens to {n}")
        self.length = n

    def clone(self) -> KVCache:
        n = self.length
        return KVCache(
            keys=[k[:, :n].clone() for k in self.keys],
            values=[v[:, :n].clone() for v in self.values],
            max_tokens=self.max_tokens,
            length=n,
        )

    def reserve(self, total: int) -> None:
        if total > self.max_tokens:
            raise ContextTooLong(
                f"The conversation needs {total} tokens but the context holds {self.max_tokens}; "
                "start a new conversation or send fewer or smaller images."
            )
        if total <= self.capacity:
            return
        new_capacity = min(self.max_tokens, max(total, 2 * self.capacity, 256))
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                grown = old.new_zeros(old.shape[0], new_capacity, old.shape[2])
                grown[:, : self.length] = old[:, : self.length]
                buffers[i] = grown


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class PLoRALinear(nn.Module):
    """A linear layer with Partial LoRA (added at image rows only) and optional task LoRAs (every row).

    Parameter names are the official ones: `weight`, `Plora_A/B`, `lora_{sft,dpo,web}_A/B`.
    """

    def __init__(self, cfg: ModelConfig, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if cfg.bias else None
        self.Plora_A = nn.Linear(in_features, cfg.plora_rank, bias=False)
        self.Plora_B = nn.Linear(cfg.plora_rank, out_features, bias=False)
        self.scale = cfg.plora_scale
        for name, rank in cfg.task_lora_ranks.items():
            setattr(self, f"{name}_A", nn.Linear(in_features, rank, bias=False))
            setattr(self, f"{name}_B", nn.Linear(rank, out_features, bias=False))

    def forward(self, x: Tensor, rows: ImageRows, tasks: tuple[str, ...]) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        for name in tasks:
            out = out + getattr(self, f"{name}_B")(getattr(self, f"{name}_A")(x))
        if rows is not None:
            out[rows] += self.Plora_B(self.Plora_A(x[rows])) * self.scale
        return out


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        heads, kv_heads, head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.wqkv = PLoRALinear(cfg, cfg.hidden_size, (heads + 2 * kv_heads) * head_dim)
        self.wo = PLoRALinear(cfg, heads * head_dim, cfg.hidden_size)

    def forward(
        self,
        x: Tensor,
        rows: ImageRows,
        tasks: tuple[str, ...],
        rope: tuple[Tensor, Tensor],
        cache: KVCache,
        i: int,
    ) -> Tensor:
        cfg, count, start = self.cfg, x.shape[0], cache.length
        per_kv = cfg.num_attention_heads // cfg.num_key_value_heads
        # wqkv's output is grouped per KV head: per_kv query heads, then one key head, then one value head.
        qkv = self.wqkv(x, rows, tasks).view(count, cfg.num_key_value_heads, per_kv + 2, cfg.head_dim)
        cos, sin = (t.to(x.dtype) for t in rope)
        q = rotate(qkv[:, :, :per_kv].reshape(count, cfg.num_attention_heads, cfg.head_dim), cos, sin)
        k = rotate(qkv[:, :, per_kv], cos, sin)
        end = start + count
        cache.keys[i][:, start:end] = k.transpose(0, 1)
        cache.values[i][:, start:end] = qkv[:, :, per_kv + 1].transpose(0, 1)
        keys, values = cache.keys[i][None, :, :end], cache.values[i][None, :, :end]
        mask = None
        if count > 1 and start > 0:
            mask = (
                torch.arange(end, device=x.device)[None] <= torch.arange(start, end, device=x.device)[:, None]
            )
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None],
            keys,
            values,
            attn_mask=mask,
            is_causal=count > 1 and start == 0,
            enable_gqa=True,
        )
        return self.wo(out[0].transpose(0, 1).reshape(count, -1), rows, tasks)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w1 = PLoRALinear(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.w3 = PLoRALinear(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.w2 = PLoRALinear(cfg, cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: Tensor, rows: ImageRows, tasks: tuple[str, ...]) -> Tensor:
        return self.w2(F.silu(self.w1(x, rows, tasks)) * self.w3(x, rows, tasks), rows, tasks)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.ffn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self,
        x: Tensor,
        rows: ImageRows,
        tasks: tuple[str, ...],
        rope: tuple[Tensor, Tensor],
        cache: KVCache,
        i: int,
    ) -> Tensor:
        x = x + self.attention(self.attention_norm(x), rows, tasks, rope, cache, i)
        return x + self.feed_forward(self.ffn_norm(x), rows, tasks)


class InternLM2(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.tok_embeddings = Table(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class NativeModel(nn.Module):
    """The whole IXC-2.5 model; parameter names match the official checkpoint's state dict."""

    def __init__(self, config: ModelConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.supported_modes = config.modes
        merged = 4 * config.vision.hidden_size
        self.model = InternLM2(config)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.plora_glb_GN = nn.Parameter(torch.zeros(1, 1, merged))
        self.plora_sub_GN = nn.Parameter(torch.zeros(1, 1, 1, merged))
        self.vit = VisionTower(config.vision)
        self.vision_proj = nn.Sequential(
            nn.Linear(merged, config.hidden_size),
            nn.GELU(),
            nn.Linear(config.hidden_size, config.hidden_size),
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> NativeModel:
        """Load a checkpoint folder (config.json, weights, tokenizer.model) without any remote code."""
        folder = Path(path)
        with checkpoint.open_weights(folder) as weights:
            config = checkpoint.read_config(folder, weights)
            tokenizer = Tokenizer.from_file(checkpoint.require_file(folder, "tokenizer.model"))
            with torch.device("meta"):
                model = cls(config, tokenizer)
            checkpoint.load_weights(model, weights, torch.device(device), dtype)
        return model.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.output.weight.dtype

    def new_cache(self, max_tokens: int) -> KVCache:
        cfg = self.config
        empty = [
            torch.zeros(cfg.num_key_value_heads, 0, cfg.head_dim, device=self.device, dtype=self.dtype)
            for _ in range(2 * cfg.num_hidden_layers)
        ]
        return KVCache(keys=empty[::2], values=empty[1::2], max_tokens=max_tokens)

    @torch.no_grad()
    def embed_tokens(self, ids: list[int] | tuple[int, ...]) -> Tensor:
        return self.model.tok_embeddings.weight[torch.tensor(ids, dtype=torch.long, device=self.device)]

    @torch.no_grad()
    def encode_image(self, pixel_values: Tensor) -> Tensor:
        """Normalised pixels [1, 3, H, W] (H, W whole crops) -> the image's embeddings [tokens, hidden]."""
        views, rows, cols = split_views(pixel_values.to(self.device), self.config.vision.image_size)
        features = self.vit(views.to(self.dtype))
        tokens = layout_tokens(features, rows, cols, self.plora_glb_GN, self.plora_sub_GN)
        return self.vision_proj(tokens)

    def embed_prompt(
        self, prompt: Prompt, image_features: Callable[[ImageSegment], Tensor], start: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Input embeddings [tokens, hidden] and image mask [tokens] of the prompt from position `start`.

        `start` > 0 is the length of a reused KV cache: only the positions after it are embedded. The mask is
        on the CPU, where `forward` reads it without a device sync.
        """
        parts: list[Tensor] = []
        masks: list[Tensor] = []
        for segment, offset in prompt.suffix(start):
            if isinstance(segment, TextSegment):
                part = self.embed_tokens(segment.token_ids[offset:])
            else:
                part = image_features(segment).to(self.device, self.dtype)
                if part.shape[0] != segment.num_tokens:
                    raise ValueError(
                        f"image {segment.image.key} gave {part.shape[0]} embeddings, not {segment.num_tokens}"
                    )
            parts.append(part)
            masks.append(torch.full((part.shape[0],), isinstance(segment, ImageSegment)))
        return torch.cat(parts), torch.cat(masks)

    @torch.no_grad()
    def forward(
        self,
        embeds: Tensor,
        im_mask: Tensor | None,
        cache: KVCache,
        mode: str = "base",
        *,
        last_only: bool = False,
    ) -> Tensor:
        """Run new tokens after the cached ones: float32 logits [tokens, vocab], or [1, vocab] if `last_only`.

        Positions continue from `cache.length`; the new keys and values are appended to the cache. Prefill
        with `last_only` when only the next token matters: full logits of a long prompt take gigabytes.
        `im_mask` None means no image rows (a decode step), which costs no tensor work at all.
        """
        if mode not in self.supported_modes:
            raise BadRequest(
                f"This checkpoint has no task LoRA for the {mode!r} mode; "
                f"use one of {', '.join(sorted(self.supported_modes))}."
            )
        count = embeds.shape[0]
        cache.reserve(cache.length + count)
        rows = image_rows(im_mask, self.device)
        tasks = tuple(TASK_LORAS[mode])
        rope = rope_tables(self.config, cache.length, count, self.device)
        x = embeds.to(self.device, self.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, rows, tasks, rope, cache, i)
        cache.length += count
        x = self.model.norm(x[-1:] if last_only else x)
        return self.output(x).float()

    @torch.no_grad()
    def logits(self, prompt: Prompt, image_pixels: Mapping[str, Tensor], mode: str = "base") -> Tensor:
        """Logits [tokens, vocab] of a whole prompt from an empty cache; `image_pixels` holds the normalised
        pixels of every prompt image by `ImageRef.key` (the model reads no files)."""

        def features(segment: ImageSegment) -> Tensor:
            return self.encode_image(image_pixels[segment.image.key])

        embeds, im_mask = self.embed_prompt(prompt, features)
        return self.forward(embeds, im_mask, self.new_cache(embeds.shape[0]), mode)
