"""Time an already decoded RGB image turned into the ViT's normalised pixel tensor (hd_num 24).

Ours: `hd_transform` (PIL's two resampling passes run separately, each split into bands across threads; each
band of the second pass normalised into the output by the thread that made it). Reference-style: what the
reference does, with torchvision's PIL paths spelled out: transpose a portrait image, one PIL bilinear resize,
`ImageOps.expand` white padding (torchvision's `pad` on a PIL image), transpose back, then ToTensor
(`np.array` copy, permute, contiguous, float, /255) and Normalize (clone, sub, div). Both outputs are checked
to be identical. The machine is shared, so min and median are printed.
Run: .venv/bin/python benchmarks/bench_hd.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ixc_app.ixc.grid import CROP, hd_grid
from ixc_app.ixc.hd import CLIP_MEAN, CLIP_STD, hd_transform

SIZES = ((1920, 1080), (3840, 2160), (1080, 1920))
HD_NUM = 24
MEAN = torch.tensor(CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(CLIP_STD).view(3, 1, 1)


def reference_style(image: Image.Image, hd_num: int = HD_NUM) -> tuple[Image.Image, torch.Tensor]:
    transposed = image.width < image.height
    if transposed:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    width, height = image.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale = min(np.ceil(width / CROP), scale - 1)
    new_w = int(scale * CROP)
    new_h = int(new_w / ratio)
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    bottom = int(np.ceil(new_h / CROP) * CROP) - new_h
    image = ImageOps.expand(image, border=(0, 0, 0, bottom), fill=(255, 255, 255))
    if transposed:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    tensor = torch.from_numpy(np.array(image, np.uint8, copy=True))
    tensor = (
        tensor.view(image.height, image.width, 3).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    )
    return image, tensor.clone().sub_(MEAN).div_(STD).unsqueeze(0)


def photo_like(width: int, height: int) -> Image.Image:
    """Gradients plus noise: the cost does not depend on content, but the equality check wants detail."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) * 127 // (width + height)], -1)
    noise = rng.integers(-20, 21, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm up: thread pool, allocator, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, hd_num {HD_NUM}, {args.runs} runs each")
    for width, height in SIZES:
        image = photo_like(width, height)
        grid = hd_grid(width, height, HD_NUM)
        ours = hd_transform(image, HD_NUM)
        ref_canvas, ref_pixels = reference_style(image)
        identical = np.array_equal(np.asarray(ours.canvas), np.asarray(ref_canvas)) and torch.equal(
            ours.pixel_values, ref_pixels
        )
        ours_t = timed(lambda image=image: hd_transform(image, HD_NUM), args.runs)
        ref_t = timed(lambda image=image: reference_style(image), max(3, args.runs // 3))
        print(
            f"{width}x{height} -> resized {grid.resized[0]}x{grid.resized[1]}, canvas "
            f"{ours.canvas.width}x{ours.canvas.height}, grid {ours.grid[0]}x{ours.grid[1]}, "
            f"{ours.num_tokens} tokens, tensor {tuple(ours.pixel_values.shape)} {ours.pixel_values.dtype}; "
            f"identical to reference-style: {identical}"
        )
        print(f"  ours:            min {min(ours_t):7.1f} ms  median {statistics.median(ours_t):7.1f} ms")
        print(
            f"  reference-style: min {min(ref_t):7.1f} ms  median {statistics.median(ref_t):7.1f} ms  "
            f"(median ratio {statistics.median(ref_t) / statistics.median(ours_t):.1f}x)"
        )


if __name__ == "__main__":
    main()
