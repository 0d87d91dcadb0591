"""The IXC-2.5 HD partition's pixel work: an image resized and padded into whole 560-pixel crops, normalised.

The arithmetic (how many crops, where the content goes) lives in `grid.py`. The pixel work reproduces the
reference `Image_transform` + `ToTensor` + `Normalize` bit for bit, in a fraction of the time. PIL resamples
separably (horizontal pass, rounding to 8 bits, vertical pass), so each pass is run on its own, split into
bands that threads resample in parallel (PIL and numpy release the GIL); the reference's transpose of a
portrait image amounts to running the vertical pass first, which is what is done instead. Each band of the
second pass is normalised straight into the output tensor by the thread that resampled it, and the white
padding is written as its known normalised value.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image

from ixc_app.ixc.grid import HDGrid, HDVariant, hd_grid, image_token_count
from ixc_app.ixc.parallel import usable_cpus

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WHITE = (255, 255, 255)

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
    return max(1, min(4, usable_cpus()))


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
