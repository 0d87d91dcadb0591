"""The IXC-2.5 HD partition's arithmetic: how many 560-pixel crops an image gets and how many embeddings.

Kept apart from the pixel work (`hd.py`) and free of torch and numpy, so that the template, the token budget
and the UI can count an image's embeddings from its size alone, without decoding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

CROP = 560
TOKENS_PER_CROP = 400  # 40x40 ViT patches merged 2x2
TOKENS_PER_ROW = 20  # one separator embedding after every row of 20 merged tokens

HDVariant = Literal["reference", "demo_single", "demo_multi"]
"""How many crops an image gets and where its padding goes.

- `reference`: the model's own `Image_transform` (what it was trained on): never upscaled past the next
  multiple of 560, padding at the bottom (right for portrait images).
- `demo_single`: the official chat demo's single-image path: up to 1.5x the image's width, padding centred.
- `demo_multi`: the official chat demo's multi-image path: the largest grid `hd_num` allows, whatever the
  image's size, padding centred.
"""


@dataclass(frozen=True)
class HDGrid:
    """Where an image of a given size lands: resized to `resized`, at `offset` on `rows` x `cols` crops."""

    rows: int
    cols: int
    resized: tuple[int, int]
    transposed: bool
    offset: tuple[int, int] = (0, 0)

    @property
    def canvas_size(self) -> tuple[int, int]:
        return (self.cols * CROP, self.rows * CROP)

    @property
    def num_tokens(self) -> int:
        return image_token_count(self.rows, self.cols)


def image_token_count(rows: int, cols: int) -> int:
    """Embeddings of one image: global view + separator + crops, each row of 20 followed by a separator."""
    return (rows * cols + 1) * TOKENS_PER_CROP + 1 + (rows + 1) * TOKENS_PER_ROW


def hd_grid(width: int, height: int, hd_num: int = 24, variant: HDVariant = "reference") -> HDGrid:
    """The reference `Image_transform` arithmetic (spec section 3), in landscape then mapped back."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if hd_num < 1:
        raise ValueError(f"hd_num must be at least 1, got {hd_num}")
    transposed = width < height
    if transposed:
        width, height = height, width
    ratio = width / height
    cols = 1
    while cols * math.ceil(cols / ratio) <= hd_num:
        cols += 1
    cols -= 1
    if variant == "reference":
        cols = min(math.ceil(width / CROP), cols)
    elif variant == "demo_single":
        cols = min(math.ceil(width * 1.5 / CROP), cols)
    elif variant != "demo_multi":
        raise ValueError(f"unknown HD variant {variant!r}")
    cols = max(1, cols)
    new_w = cols * CROP
    # The reference truncates; an extreme ratio would truncate to 0 rows, which no resize accepts.
    new_h = max(1, int(new_w / ratio))
    rows = math.ceil(new_h / CROP)
    pad = 0 if variant == "reference" else (rows * CROP - new_h) // 2
    if transposed:
        return HDGrid(rows=cols, cols=rows, resized=(new_h, new_w), transposed=True, offset=(pad, 0))
    return HDGrid(rows=rows, cols=cols, resized=(new_w, new_h), transposed=False, offset=(0, pad))
