"""Attention over each sequence's own KV cache, on PyTorch's fused kernels, and the rotary tables.

Every sequence the engine runs owns one `KVCache`, allocated once for its whole budget (prompt plus answer),
so decoding never reallocates or copies it. A forward pass sees the caches through a layout:

- `Extend`: new positions of one sequence after its cached ones (a prefill chunk). The first chunk of a prompt
  is plain causal attention; a chunk after cached positions uses bottom-right-aligned causal attention
  (`causal_lower_right`), which PyTorch serves with FlashAttention or its memory-efficient kernel: no mask is
  materialised over the cache and no score matrix is built.
- `Step`: one new position for each of several sequences (a batched decode step). Keys and values are written
  with one multi-tensor copy; attention runs per sequence over its own length (one query, no mask).

Grouped-query heads go to SDPA as they are (`enable_gqa`) wherever a fused kernel takes them (FlashAttention
in fp16/bf16); on a GPU where none does (fp32), the KV heads are expanded first, so the memory-efficient
kernel runs instead of the math fallback, whose fp32 score matrix makes long prompts run out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.backends.cuda import SDPAParams, can_use_efficient_attention, can_use_flash_attention
from torch.nn.attention.bias import causal_lower_right

from ixc_app.engines.base import ContextTooLong
from ixc_app.engines.native.config import ModelConfig
from ixc_app.i18n import tr


@dataclass
class KVCache:
    """Keys and values of one sequence, [layers, 2 (keys, values), kv_heads, capacity, head_dim].

    The first `length` positions are valid. `truncate` rolls the sequence back without freeing anything.
    """

    data: Tensor
    length: int = 0

    @property
    def capacity(self) -> int:
        return self.data.shape[3]

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def truncate(self, n: int) -> None:
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} tokens to {n}")
        self.length = n

    def clone(self) -> KVCache:
        return KVCache(self.data.clone(), self.length)

    def check_room(self, count: int) -> None:
        if self.length + count > self.capacity:
            raise ContextTooLong(
                tr(
                    "The conversation needs {needed} tokens but its cache holds {capacity}; start a new "
                    "conversation or send fewer or smaller images.",
                    needed=self.length + count,
                    capacity=self.capacity,
                )
            )


def sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
    """`F.scaled_dot_product_attention` on [1, heads, n, dim] tensors with fewer KV heads than query heads."""
    if q.device.type == "cuda" and not fused_gqa(q, k, v, is_causal or mask is not None):
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=True)


def fused_gqa(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> bool:
    """Whether FlashAttention or the memory-efficient kernel takes these grouped-query heads as they are."""
    params = SDPAParams(q, k, v, None, 0.0, causal, True)
    return bool(can_use_flash_attention(params) or can_use_efficient_attention(params))


def attend_after(q: Tensor, keys: Tensor, values: Tensor, start: int) -> Tensor:
    """Causal attention of `q` [n, heads, dim] at positions start.. over `keys`, `values`
    [kv_heads, start + n, dim]."""
    count = q.shape[0]
    q4, k4, v4 = q.transpose(0, 1)[None], keys[None], values[None]
    if count == 1:
        out = sdpa(q4, k4, v4)
    elif start == 0:
        out = sdpa(q4, k4, v4, is_causal=True)
    else:
        out = sdpa(q4, k4, v4, mask=causal_lower_right(count, start + count))
    return out[0].transpose(0, 1)


class Extend:
    """The layout of a prefill chunk: `count` new positions of one sequence after its `cache.length`."""

    def __init__(self, cache: KVCache, count: int) -> None:
        cache.check_room(count)
        self.cache, self.start, self.end = cache, cache.length, cache.length + count

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        kv = self.cache.data[layer]
        kv[0, :, self.start : self.end] = k.transpose(0, 1)
        kv[1, :, self.start : self.end] = v.transpose(0, 1)
        return attend_after(q, kv[0, :, : self.end], kv[1, :, : self.end], self.start)

    def advance(self) -> None:
        self.cache.length = self.end


class Step:
    """The layout of a decode step: one new position for each cache, at its current length."""

    def __init__(self, caches: list[KVCache]) -> None:
        for cache in caches:
            cache.check_room(1)
        self.caches = caches
        self.positions = [cache.length for cache in caches]

    @torch.compiler.disable
    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        slots = [c.data[layer, :, :, p] for c, p in zip(self.caches, self.positions, strict=True)]
        torch._foreach_copy_(slots, list(torch.stack([k, v], dim=1).unbind(0)))
        outs = []
        for row, (cache, position) in enumerate(zip(self.caches, self.positions, strict=True)):
            kv = cache.data[layer, :, :, : position + 1]
            outs.append(sdpa(q[row, :, None][None], kv[0][None], kv[1][None])[0, :, 0])
        return torch.stack(outs)

    def advance(self) -> None:
        for cache in self.caches:
            cache.length += 1


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


class RopeTable:
    """cos and sin of every position up to `max_position_embeddings`, computed once.

    Up to that length the base never changes, so a slice of the table is exact. Past it, dynamic NTK rotates
    each forward pass's new positions with the base of its own total length, so those rows are computed then.
    """

    def __init__(self, cfg: ModelConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.size = cfg.max_position_embeddings
        self.cos, self.sin = rope_tables(cfg, 0, self.size, device)

    def span(self, start: int, count: int) -> tuple[Tensor, Tensor]:
        if start + count <= self.size:
            return self.cos[start : start + count], self.sin[start : start + count]
        return rope_tables(self.cfg, start, count, self.device)

    def rows(self, positions: list[int]) -> tuple[Tensor, Tensor]:
        """cos and sin [len(positions), head_dim] of one new position per sequence."""
        if max(positions) < self.size:
            index = torch.tensor(positions, device=self.device)
            return self.cos[index], self.sin[index]
        spans = [self.span(p, 1) for p in positions]
        return torch.cat([c for c, _ in spans]), torch.cat([s for _, s in spans])


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x [tokens, heads, head_dim] in the half-split layout InternLM2 uses."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]
