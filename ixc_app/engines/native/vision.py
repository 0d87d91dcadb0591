"""The IXC-2.5 vision path: the CLIP ViT-L/14-560 tower and the layout of an image's embeddings.

Module names follow Hugging Face's `CLIPVisionModel` under the reference's wrapper
(`vit.vision_tower.vision_model...`), so the official checkpoint loads by name. The tower has no
`post_layernorm`: the model reads the hidden state after the last encoder layer (CLS dropped), so that norm
never runs and its weights, if present, are skipped.

Layout of one image whose padded canvas is `rows` x `cols` crops (spec section 1): the global view (the whole
canvas resized bicubic to one crop) as 20 rows of 20 merged tokens, each row followed by `sub_GN`; then
`glb_GN`; then every crop stitched into one 20*rows x 20*cols grid read row by row, each row followed by
`sub_GN`. Each merged token concatenates a 2x2 patch neighbourhood in the order (0,0), (0,1), (1,0), (1,1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ixc_app.engines.native.config import VisionConfig

VISION_BATCH = 8
"""Crops per tower call: bounds the attention memory of a 24-crop image without slowing small ones."""


class Table(nn.Module):
    """A learned lookup table ([rows, width] `weight`), created without initialising it: loading fills it."""

    def __init__(self, rows: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, width))


def quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": F.gelu}


class CLIPEmbeddings(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(cfg.hidden_size))
        self.patch_embedding = nn.Conv2d(3, cfg.hidden_size, cfg.patch_size, cfg.patch_size, bias=False)
        self.position_embedding = Table(cfg.grid**2 + 1, cfg.hidden_size)

    def forward(self, pixels: Tensor) -> Tensor:
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixels.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight


class CLIPAttention(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            nn.Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(4)
        )

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for p in self.projections)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))

    @property
    def projections(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        return self.q_proj, self.k_proj, self.v_proj


class CLIPMLP(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.self_attn = CLIPAttention(cfg)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))


class CLIPVisionTransformer(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.embeddings = CLIPEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = CLIPEncoder(cfg)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.pre_layrnorm(self.embeddings(pixels))
        for layer in self.encoder.layers:
            x = layer(x)
        return x[:, 1:]


class CLIPVisionModel(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.vision_model = CLIPVisionTransformer(cfg)


class VisionTower(nn.Module):
    """The reference's `vit` wrapper: crops in, last-layer patch features out ([n, grid*grid, width])."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.vision_tower = CLIPVisionModel(cfg)

    def forward(self, crops: Tensor) -> Tensor:
        return torch.cat([self.vision_tower.vision_model(c) for c in crops.split(VISION_BATCH)])


def split_views(pixel_values: Tensor, size: int) -> tuple[Tensor, int, int]:
    """The global view then the crops in row-major order, as [1 + rows*cols, 3, size, size] float32.

    The global view is a bicubic resize of the normalised tensor (not of the picture), as the reference does.
    """
    _, channels, height, width = pixel_values.shape
    if height % size or width % size:
        raise ValueError(f"pixel values of {width}x{height} are not whole {size}-pixel crops")
    rows, cols = height // size, width // size
    pixels = pixel_values.float()
    glb = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)
    crops = pixels.reshape(channels, rows, size, cols, size).permute(1, 3, 0, 2, 4)
    return torch.cat([glb, crops.reshape(rows * cols, channels, size, size)]), rows, cols


def merge_2x2(features: Tensor) -> Tensor:
    """[n, g*g, c] patch features -> [n, g/2, g/2, 4c]: each 2x2 neighbourhood concatenated channel-wise."""
    n, count, c = features.shape
    g = math.isqrt(count)
    blocks = features.reshape(n, g // 2, 2, g // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(n, g // 2, g // 2, 4 * c)


def layout_tokens(features: Tensor, rows: int, cols: int, glb_gn: Tensor, sub_gn: Tensor) -> Tensor:
    """Tower features of the global view and the crops -> the image's embedding sequence [N, 4c]."""
    merged = merge_2x2(features)
    _, side, _, width = merged.shape
    sub = sub_gn.reshape(1, 1, width).to(merged.dtype)
    glb_view = torch.cat([merged[0], sub.expand(side, 1, width)], dim=1).reshape(-1, width)
    grid = merged[1:].reshape(rows, cols, side, side, width).permute(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * side, cols * side, width)
    crops = torch.cat([grid, sub.expand(rows * side, 1, width)], dim=1).reshape(-1, width)
    return torch.cat([glb_view, glb_gn.reshape(1, width).to(merged.dtype), crops])
