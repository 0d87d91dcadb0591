"""The IXC-2.5 HD partition: how an image is resized and padded into whole 560-pixel crops.

The grid arithmetic is kept apart from the pixel work so that the template and the token budget can count an
image's embeddings from its size alone, without decoding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CROP = 560
TOKENS_PER_CROP = 400  # 40x40 ViT patches merged 2x2
TOKENS_PER_ROW = 20  # one separator embedding after every row of 20 merged tokens


@dataclass(frozen=True)
class HDGrid:
    """Where an image of a given size lands: resized to `resized`, padded to `rows` x `cols` crops."""

    rows: int
    cols: int
    resized: tuple[int, int]
    transposed: bool

    @property
    def canvas_size(self) -> tuple[int, int]:
        return (self.cols * CROP, self.rows * CROP)

    @property
    def num_tokens(self) -> int:
        return image_token_count(self.rows, self.cols)


def image_token_count(rows: int, cols: int) -> int:
    """Embeddings of one image: global view + separator + crops, each row of 20 followed by a separator."""
    return (rows * cols + 1) * TOKENS_PER_CROP + 1 + (rows + 1) * TOKENS_PER_ROW


def hd_grid(width: int, height: int, hd_num: int = 24) -> HDGrid:
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
    cols = max(1, min(math.ceil(width / CROP), cols - 1))
    new_w = cols * CROP
    # The reference truncates; an extreme ratio would truncate to 0 rows, which no resize accepts.
    new_h = max(1, int(new_w / ratio))
    rows = math.ceil(new_h / CROP)
    if transposed:
        return HDGrid(rows=cols, cols=rows, resized=(new_h, new_w), transposed=True)
    return HDGrid(rows=rows, cols=cols, resized=(new_w, new_h), transposed=False)
