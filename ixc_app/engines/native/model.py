"""IXC-2.5 in plain PyTorch: InternLM2 with Partial LoRA and task LoRAs, the CLIP tower and the projector.

Tensors are [tokens, features]. `forward` runs new positions of one sequence (a prefill chunk) after what its
KV cache holds; `decode` runs one new position for each of several sequences at once, so the linears and their
LoRAs read their weights once per step for every running request. Rows of one batch may use different
inference modes: each task LoRA is applied at the rows whose mode uses it (`TaskRows`).

Rotary positions: with `rope_scaling` "dynamic", once the total length L (cached + new tokens) exceeds
`max_position_embeddings`, the new tokens are rotated with base' = base * (factor*L/max_pos - (factor-1)) **
(d/(d-2)) for that L, while cached keys keep the rotation they were stored with. The reference does the same
during generation (its rotary cache is rebuilt for every longer length; keys already in the cache are never
re-rotated). One difference: the reference keeps its enlarged table for later, shorter requests; here every
forward pass uses the base of its own total length, so results do not depend on earlier requests. A
consequence in both: beyond `max_position_embeddings`, prefilling a prompt in two chunks rotates the first
chunk with a smaller base than one prefill of the whole prompt would (chunked prefill does exactly that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ixc_app.engines.base import BadRequest
from ixc_app.engines.native import checkpoint
from ixc_app.engines.native.attention import Extend, KVCache, RopeTable, Step, rotate
from ixc_app.engines.native.config import TASK_LORAS, ModelConfig
from ixc_app.engines.native.vision import Table, VisionTower, layout_tokens, split_views
from ixc_app.i18n import tr
from ixc_app.ixc.prompt import ImageSegment, Prompt, TextSegment
from ixc_app.ixc.tokenizer import Tokenizer

ImageRows = slice | Tensor | None
"""Which rows of a chunk are image tokens: none, all (`slice(None)`), or their indices."""

TaskRows = tuple[tuple[str, slice | Tensor], ...]
"""The task LoRAs to add and the rows each applies to (all rows: `slice(None)`)."""

Layout = Extend | Step
"""Where a forward pass's keys and values go and what its queries attend to (see `attention`)."""


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


def task_rows(modes: list[str], device: torch.device) -> TaskRows:
    """The task LoRAs of a batch whose row i runs in `modes[i]`."""
    rows: dict[str, list[int]] = {}
    for row, mode in enumerate(modes):
        for name in TASK_LORAS[mode]:
            rows.setdefault(name, []).append(row)
    return tuple(
        (name, slice(None) if len(ids) == len(modes) else torch.tensor(ids, device=device))
        for name, ids in rows.items()
    )


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

    def forward(self, x: Tensor, rows: ImageRows, tasks: TaskRows) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        for name, at in tasks:
            lora_a, lora_b = getattr(self, f"{name}_A"), getattr(self, f"{name}_B")
            if isinstance(at, slice):
                out = out + lora_b(lora_a(x))
            else:
                out = out.index_add(0, at, lora_b(lora_a(x[at])))
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
        tasks: TaskRows,
        rope: tuple[Tensor, Tensor],
        layout: Layout,
        i: int,
    ) -> Tensor:
        cfg, count = self.cfg, x.shape[0]
        per_kv = cfg.num_attention_heads // cfg.num_key_value_heads
        # wqkv's output is grouped per KV head: per_kv query heads, then one key head, then one value head.
        qkv = self.wqkv(x, rows, tasks).view(count, cfg.num_key_value_heads, per_kv + 2, cfg.head_dim)
        cos, sin = rope
        q = rotate(qkv[:, :, :per_kv].reshape(count, cfg.num_attention_heads, cfg.head_dim), cos, sin)
        k = rotate(qkv[:, :, per_kv], cos, sin)
        out = layout.attend(i, q, k, qkv[:, :, per_kv + 1])
        return self.wo(out.reshape(count, -1), rows, tasks)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w1 = PLoRALinear(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.w3 = PLoRALinear(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.w2 = PLoRALinear(cfg, cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: Tensor, rows: ImageRows, tasks: TaskRows) -> Tensor:
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
        tasks: TaskRows,
        rope: tuple[Tensor, Tensor],
        layout: Layout,
        i: int,
    ) -> Tensor:
        x = x + self.attention(self.attention_norm(x), rows, tasks, rope, layout, i)
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
        self.decode_layer: Callable[..., Tensor] = DecoderLayer.__call__
        """How `decode` runs a layer; `compile_decode` swaps in a compiled one."""
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

    def new_cache(self, capacity: int) -> KVCache:
        """An empty cache for `capacity` positions, allocated once."""
        return self.new_caches(capacity, 1)[0]

    def new_caches(self, capacity: int, count: int) -> list[KVCache]:
        """`count` empty caches of `capacity` positions in one tensor (a beam search's sequences)."""
        cfg = self.config
        shape = (count, cfg.num_hidden_layers, 2, cfg.num_key_value_heads, capacity, cfg.head_dim)
        group = torch.empty(shape, device=self.device, dtype=self.dtype)
        return [KVCache(group[i]) for i in range(count)]

    def kv_bytes_per_position(self) -> int:
        cfg = self.config
        return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * self.dtype.itemsize

    @property
    def rope(self) -> RopeTable:
        """The rotary table on the model's device, computed on first use."""
        table = self.__dict__.get("_rope")
        if table is None or table.device != self.device:
            table = self.__dict__["_rope"] = RopeTable(self.config, self.device)
        return table

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
        self,
        prompt: Prompt,
        image_features: Callable[[ImageSegment], Tensor],
        start: int = 0,
        end: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Input embeddings [tokens, hidden] and image mask [tokens] of the prompt's positions start..end.

        The span may begin or end inside an image: its features are computed whole and sliced. The mask is
        on the CPU, where `forward` reads it without a device sync.
        """
        end = prompt.num_tokens if end is None else end
        parts: list[Tensor] = []
        masks: list[Tensor] = []
        position = 0
        for segment in prompt.segments:
            is_text = isinstance(segment, TextSegment)
            size = len(segment.token_ids) if is_text else segment.num_tokens
            lo, hi = max(start, position) - position, min(end, position + size) - position
            position += size
            if lo >= hi:
                continue
            if is_text:
                part = self.embed_tokens(segment.token_ids[lo:hi])
            else:
                features = image_features(segment)
                if features.shape[0] != segment.num_tokens:
                    key, got = segment.image.key, features.shape[0]
                    raise ValueError(f"image {key} gave {got} embeddings, not {segment.num_tokens}")
                part = features[lo:hi].to(self.device, self.dtype)
            parts.append(part)
            masks.append(torch.full((hi - lo,), not is_text))
        return torch.cat(parts), torch.cat(masks)

    def check_mode(self, mode: str) -> None:
        if mode not in self.supported_modes:
            raise BadRequest(
                tr(
                    "This checkpoint has no task LoRA for the {mode!r} mode; use one of {modes}.",
                    mode=mode,
                    modes=", ".join(sorted(self.supported_modes)),
                )
            )

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
        """New positions of one sequence after its cached ones: float32 logits [tokens, vocab] ([1, vocab] if
        `last_only`).

        Positions continue from `cache.length`; the new keys and values are written into the cache. Prefill
        with `last_only` when only the next token matters: full logits of a long prompt take gigabytes.
        `im_mask` None means no image rows, which costs no tensor work at all.
        """
        self.check_mode(mode)
        count = embeds.shape[0]
        layout = Extend(cache, count)
        rows = image_rows(im_mask, self.device)
        tasks = tuple((name, slice(None)) for name in TASK_LORAS[mode])
        rope = tuple(t.to(self.dtype) for t in self.rope.span(cache.length, count))
        x = embeds.to(self.device, self.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, rows, tasks, rope, layout, i)
        layout.advance()
        x = self.model.norm(x[-1:] if last_only else x)
        return self.output(x).float()

    @torch.no_grad()
    def decode(self, tokens: Tensor, caches: list[KVCache], tasks: TaskRows) -> Tensor:
        """One new position per cache (`tokens` [rows], on the device): float32 logits [rows, vocab]."""
        layout = Step(caches)
        rope = tuple(t.to(self.dtype) for t in self.rope.rows(layout.positions))
        x = self.model.tok_embeddings.weight[tokens]
        for i, layer in enumerate(self.model.layers):
            x = self.decode_layer(layer, x, None, tasks, rope, layout, i)
        layout.advance()
        return self.output(self.model.norm(x)).float()

    def compile_decode(self) -> None:
        """Compile the decode step's layers with `torch.compile` (per-sequence attention stays eager)."""
        self.decode_layer = torch.compile(DecoderLayer.forward, dynamic=True)

    @torch.no_grad()
    def logits(self, prompt: Prompt, image_pixels: Mapping[str, Tensor], mode: str = "base") -> Tensor:
        """Logits [tokens, vocab] of a whole prompt from an empty cache; `image_pixels` holds the normalised
        pixels of every prompt image by `ImageRef.key` (the model reads no files)."""

        def features(segment: ImageSegment) -> Tensor:
            return self.encode_image(image_pixels[segment.image.key])

        embeds, im_mask = self.embed_prompt(prompt, features)
        return self.forward(embeds, im_mask, self.new_cache(embeds.shape[0]), mode)
