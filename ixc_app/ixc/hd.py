"""The IXC-2.5 HD partition: how an image is resized and padded into whole 560-pixel crops.

The grid arithmetic is kept apart from the pixel work so that the template and the token budget can count an
image's embeddings from its size alone, without decoding it.

The pixel work reproduces the reference `Image_transform` + `ToTensor` + `Normalize` bit for bit, in a
fraction of the time. PIL resamples separably (horizontal pass, rounding to 8 bits, vertical pass), so each
pass is run on its own, split into bands that threads resample in parallel (PIL and numpy release the GIL);
the reference's transpose of a portrait image amounts to running the vertical pass first, which is what is
done instead. Each band of the second pass is normalised straight into the output tensor by the thread that
resampled it, and the white padding is written as its known normalised value.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import torch
from PIL import Image

CROP = 560
TOKENS_PER_CROP = 400  # 40x40 ViT patches merged 2x2
TOKENS_PER_ROW = 20  # one separator embedding after every row of 20 merged tokens

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WHITE = (255, 255, 255)

HDVariant = Literal["reference", "demo_single", "demo_multi"]
"""How many crops an image gets and where its padding goes.

- `reference`: the model's own `Image_transform` (what it was trained on): never upscaled past the next
  multiple of 560, padding at the bottom (right for portrait images).
- `demo_single`: the official chat demo's single-image path: up to 1.5x the image's width, padding centred.
- `demo_multi`: the official chat demo's multi-image path: the largest grid `hd_num` allows, whatever the
  image's size, padding centred.
"""

# Below this many pixels a pass is not worth splitting across threads.
_MIN_PIXELS_TO_SPLIT = 1 << 18
_CHUNK_PIXELS = 1 << 16  # pixels normalised in one go: their 768 KiB of floats stay in the L2 cache
_F255 = np.float32(255)
_MEAN = np.array(CLIP_MEAN, dtype=np.float32)
_STD = np.array(CLIP_STD, dtype=np.float32)
_WHITE_NORMALISED = (np.float32(1) - _MEAN) / _STD
_MEAN_CHW = _MEAN.reshape(3, 1, 1)
_STD_CHW = _STD.reshape(3, 1, 1)


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


@dataclass(frozen=True)
class HDImage:
    """One image ready for the vision tower: the padded canvas, its crop grid and its normalised pixels."""

    canvas: Image.Image
    grid: tuple[int, int]
    pixel_values: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return image_token_count(*self.grid)


def hd_transform(image: Image.Image, hd_num: int = 24, variant: HDVariant = "reference") -> HDImage:
    """Resize and pad an RGB image into whole crops and normalise it, as the reference does before the ViT."""
    _require_rgb(image)
    grid = hd_grid(image.width, image.height, hd_num, variant)
    new_w, new_h = grid.resized
    # In landscape the reference's one resize call is a horizontal then a vertical pass; for a portrait image
    # it resizes the transposed image, which in the original orientation is the vertical pass first.
    if grid.transposed:
        between = _first_pass(image, (image.width, new_h))
    else:
        between = _first_pass(image, (new_w, image.height))
    canvas, pixels = _last_pass(between, grid)
    return HDImage(canvas=canvas, grid=(grid.rows, grid.cols), pixel_values=pixels)


def normalize(canvas: Image.Image) -> torch.Tensor:
    """The reference's `ToTensor` + CLIP `Normalize` as [1, 3, H, W] float32 (all a video strip needs)."""
    _require_rgb(canvas)
    width, height = canvas.size
    out = _new_pixels(height, width)

    def band(a: int, b: int) -> None:
        _normalise_into(out[0, :, a:b], canvas.crop((0, a, width, b)))

    jobs = [_pool().submit(band, a, b) for a, b in itertools.pairwise(_cuts(height, width * height))]
    for job in jobs:
        job.result()
    return torch.from_numpy(out)


def _new_pixels(height: int, width: int) -> np.ndarray:
    """The output buffer, from numpy rather than torch: numpy asks the kernel for huge pages, so faulting in
    the 50-100 MB of a large image costs about half as much (on the order of the normalisation itself)."""
    return np.empty((1, 3, height, width), dtype=np.float32)


def _require_rgb(image: Image.Image) -> None:
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode} (load images through ixc_app.media)")


def _normalise_into(out: np.ndarray, image: Image.Image) -> None:
    """Write `(v / 255 - mean) / std` of an RGB image into `out` [3, h, w]: the reference's float32 operations
    in its order, so the values are the same to the last bit.

    A few rows at a time are widened into a small contiguous buffer (pixel-interleaved to channel planes in
    one numpy call, its fastest form), put through the three passes there while it is in the cache, and
    copied out: numpy is several times slower on the strided view of a band. numpy releases the GIL for each
    call, so bands run in parallel.
    """
    rgb = np.asarray(image)
    rows = max(1, _CHUNK_PIXELS // image.width)
    scratch = np.empty((3, rows, image.width), dtype=np.float32)
    for top in range(0, image.height, rows):
        chunk = rgb[top : top + rows]
        buf = scratch[:, : chunk.shape[0]]
        np.copyto(buf, chunk.transpose(2, 0, 1), casting="unsafe")
        np.divide(buf, _F255, out=buf)
        np.subtract(buf, _MEAN_CHW, out=buf)
        np.divide(buf, _STD_CHW, out=buf)
        out[:, top : top + rows] = buf


def _fill_white(out: np.ndarray) -> None:
    for channel in range(3):
        out[channel] = _WHITE_NORMALISED[channel]


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="hd-pixels")


def _workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cpus))


def _cuts(length: int, work: int) -> list[int]:
    """Band boundaries along `length`: one band per worker, or one band when there is too little work."""
    bands = min(length, _workers()) if work >= _MIN_PIXELS_TO_SPLIT else 1
    return [length * i // bands for i in range(bands + 1)]


def _resize(src: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> Image.Image:
    band = src.crop(box)
    return band if band.size == size else band.resize(size, Image.Resampling.BILINEAR)


def _first_pass(src: Image.Image, size: tuple[int, int]) -> Image.Image:
    """One bilinear pass along the one axis whose length changes.

    A horizontal pass treats every row on its own and a vertical pass every column, so bands across the
    other axis, resampled by different threads (PIL releases the GIL), give exactly the pixels of one call.
    """
    if size == src.size:
        return src
    width, height = size
    horizontal = width != src.width
    out = Image.new("RGB", size)
    cuts = _cuts(src.height if horizontal else src.width, src.width * src.height)
    jobs = []
    for a, b in itertools.pairwise(cuts):
        if horizontal:
            jobs.append((_pool().submit(_resize, src, (0, a, src.width, b), (width, b - a)), (0, a)))
        else:
            jobs.append((_pool().submit(_resize, src, (a, 0, b, src.height), (b - a, height)), (a, 0)))
    for job, at in jobs:
        out.paste(job.result(), at)
    return out


def _last_pass(between: Image.Image, grid: HDGrid) -> tuple[Image.Image, torch.Tensor]:
    """The remaining pass, placed on the white canvas and normalised, band by band in parallel.

    The content always spans the whole canvas along the pass's band axis (its long side is whole crops), so
    each band is a full stripe of the canvas: resampled content plus white padding on one or both sides.
    """
    width, height = grid.canvas_size
    new_w, new_h = grid.resized
    left, top = grid.offset
    horizontal = grid.transposed  # a portrait image has its vertical pass done: the width is left
    out = _new_pixels(height, width)

    def band(a: int, b: int) -> Image.Image:
        if horizontal:
            content = _resize(between, (0, a, between.width, b), (new_w, b - a))
            stripe = out[0, :, a:b]
            _normalise_into(stripe[:, :, left : left + new_w], content)
            _fill_white(stripe[:, :, :left])
            _fill_white(stripe[:, :, left + new_w :])
        else:
            content = _resize(between, (a, 0, b, between.height), (b - a, new_h))
            stripe = out[0, :, :, a:b]
            _normalise_into(stripe[:, top : top + new_h], content)
            _fill_white(stripe[:, :top])
            _fill_white(stripe[:, top + new_h :])
        return content

    cuts = _cuts(new_h if horizontal else new_w, width * height)
    jobs = [(_pool().submit(band, a, b), a) for a, b in itertools.pairwise(cuts)]
    canvas = Image.new("RGB", (width, height), WHITE)
    for job, a in jobs:
        canvas.paste(job.result(), (left, a) if horizontal else (a, top))
    return canvas, torch.from_numpy(out)
