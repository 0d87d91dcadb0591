"""The HD partition against the spec's worked table and a literal re-implementation of the reference pipeline.

`_reference` below follows the reference step by step (transpose, one PIL resize, pad, transpose back, then
ToTensor and Normalize as plain torch arithmetic); `hd_transform` takes a different, faster route and must
land on the same pixels and the same floats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ixc_app.ixc.grid import CROP, hd_grid
from ixc_app.ixc.hd import CLIP_MEAN, CLIP_STD, HDImage, hd_transform, normalize

MEAN = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
STD = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)


def _reference(
    image: Image.Image, hd_num: int, variant: str = "reference"
) -> tuple[Image.Image, torch.Tensor]:
    """The reference `Image_transform` (or a demo variant) + ToTensor + Normalize, written out plainly."""
    transposed = image.width < image.height
    if transposed:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    width, height = image.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale -= 1
    if variant == "reference":
        scale = min(np.ceil(width / 560), scale)
    elif variant == "demo_single":
        scale = min(np.ceil(width * 1.5 / 560), scale)
    new_w = int(scale * 560)
    new_h = max(
        1, int(new_w / ratio)
    )  # the reference crashes at 0 rows (ratio > 560 * cols); one row is kept
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    target = int(np.ceil(new_h / 560) * 560)
    top = 0 if variant == "reference" else int((target - new_h) / 2)
    padded = Image.new("RGB", (new_w, target), (255, 255, 255))
    padded.paste(image, (0, top))
    if transposed:
        padded = padded.transpose(Image.Transpose.TRANSPOSE)
    tensor = torch.from_numpy(np.array(padded)).permute(2, 0, 1).contiguous().float().div(255)
    return padded, ((tensor - MEAN) / STD).unsqueeze(0)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _gradient(width: int, height: int) -> Image.Image:
    """Cheap to make at any size, and every pixel differs from its neighbours in a known way."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), (x + y) / 2], -1
    )
    return Image.fromarray(rgb.astype(np.uint8))


def _assert_same(ours: HDImage, canvas: Image.Image, pixels: torch.Tensor) -> None:
    assert ours.canvas.mode == "RGB"
    assert ours.canvas.size == canvas.size
    assert np.array_equal(np.asarray(ours.canvas), np.asarray(canvas))
    assert ours.pixel_values.dtype == torch.float32
    assert ours.pixel_values.shape == pixels.shape
    assert torch.equal(ours.pixel_values, pixels)


# (width, height, hd_num) -> (canvas width, canvas height, tokens): spec section 3's worked cases.
WORKED = [
    (448, 448, 24, 560, 560, 841),
    (800, 600, 24, 1120, 1120, 2061),
    (1280, 720, 24, 1680, 1120, 2861),
    (1920, 1080, 24, 2240, 1680, 5281),
    (1080, 1920, 24, 1680, 2240, 5301),
    (3840, 2160, 24, 3360, 2240, 10101),
    (4000, 3000, 24, 2800, 2240, 8501),
    (3000, 500, 24, 3360, 560, 2841),
    (1920, 1080, 6, 1680, 1120, 2861),
    (3840, 2160, 6, 1680, 1120, 2861),
    (4000, 3000, 6, 1120, 1120, 2061),
]


@pytest.mark.parametrize(("width", "height", "hd_num", "canvas_w", "canvas_h", "tokens"), WORKED)
def test_worked_table(
    width: int, height: int, hd_num: int, canvas_w: int, canvas_h: int, tokens: int
) -> None:
    out = hd_transform(_gradient(width, height), hd_num)
    assert out.canvas.size == (canvas_w, canvas_h)
    assert out.grid == (canvas_h // CROP, canvas_w // CROP)
    assert out.num_tokens == tokens
    assert out.pixel_values.shape == (1, 3, canvas_h, canvas_w)
    grid = hd_grid(width, height, hd_num)
    assert (grid.rows, grid.cols, grid.canvas_size, grid.num_tokens) == (*out.grid, out.canvas.size, tokens)


@pytest.mark.parametrize(
    ("width", "height", "hd_num"),
    [
        (1920, 1080, 24),  # upscaled, padded at the bottom
        (1080, 1920, 24),  # portrait: the reference transposes, so the passes run in the other order
        (3840, 2160, 6),  # downscaled
        (1000, 1000, 24),  # square: landscape path
        (2000, 100, 24),  # 20:1
        (100, 2000, 24),  # 1:20
        (13, 7, 24),
        (7, 13, 24),
        (1, 1, 24),
        (561, 3, 1),
        (1120, 700, 24),  # already at its final size: neither pass resamples, only padding is added
        (700, 1120, 24),
        (1120, 1000, 24),  # only the height changes
        (1000, 1120, 24),
    ],
)
def test_matches_reference_pipeline_bit_for_bit(width: int, height: int, hd_num: int) -> None:
    image = _noise(width, height, seed=width * 31 + height)
    _assert_same(hd_transform(image, hd_num), *_reference(image, hd_num))


@pytest.mark.parametrize("variant", ["demo_single", "demo_multi"])
@pytest.mark.parametrize(("width", "height", "hd_num"), [(1920, 1080, 18), (1080, 1920, 18), (448, 448, 4)])
def test_demo_variants_match_the_demo_arithmetic(width: int, height: int, hd_num: int, variant: str) -> None:
    image = _noise(width, height, seed=7)
    _assert_same(hd_transform(image, hd_num, variant), *_reference(image, hd_num, variant))


def test_demo_variant_grids() -> None:
    # identity x1.5: 1920 wide may reach ceil(2880/560) = 6 columns, the hd_num=18 grid allows 5.
    single = hd_grid(1920, 1080, 18, "demo_single")
    assert (single.rows, single.cols, single.resized, single.offset) == (3, 5, (2800, 1575), (0, 52))
    # the multi-image path fills the grid even for a small image: 448x448 goes to 2x2 crops.
    multi = hd_grid(448, 448, 4, "demo_multi")
    assert (multi.rows, multi.cols, multi.resized, multi.offset) == (2, 2, (1120, 1120), (0, 0))
    assert hd_grid(448, 448, 4).canvas_size == (560, 560)
    portrait = hd_grid(1080, 1920, 18, "demo_single")
    assert (portrait.rows, portrait.cols, portrait.offset) == (5, 3, (52, 0))
    with pytest.raises(ValueError, match="unknown HD variant"):
        hd_grid(100, 100, 24, "biggest")  # type: ignore[arg-type]


def test_centred_padding_position() -> None:
    out = hd_transform(Image.new("RGB", (1920, 1080), (0, 0, 0)), 18, "demo_single")
    pixels = np.asarray(out.canvas)
    assert out.canvas.size == (2800, 1680)
    assert (pixels[:52] == 255).all() and (pixels[52 + 1575 :] == 255).all()
    assert (pixels[52 : 52 + 1575] == 0).all()


@pytest.mark.parametrize(
    ("width", "height", "canvas", "grid", "resized"),
    [
        (2000, 100, (2240, 560), (1, 4), (2240, 112)),
        (100, 2000, (560, 2240), (4, 1), (112, 2240)),
        (13, 7, (560, 560), (1, 1), (560, 301)),
        (7, 13, (560, 560), (1, 1), (301, 560)),
        (1, 1, (560, 560), (1, 1), (560, 560)),
    ],
)
def test_extreme_ratios_and_tiny_images(
    width: int, height: int, canvas: tuple[int, int], grid: tuple[int, int], resized: tuple[int, int]
) -> None:
    colour = (200, 40, 90)
    out = hd_transform(Image.new("RGB", (width, height), colour), 24)
    assert out.canvas.size == canvas
    assert out.grid == grid
    assert out.num_tokens == (grid[0] * grid[1] + 1) * 400 + 1 + (grid[0] + 1) * 20
    assert hd_grid(width, height, 24).resized == resized
    pixels = np.asarray(out.canvas)
    content_w, content_h = resized
    assert (pixels[:content_h, :content_w] == colour).all()
    assert (pixels[content_h:] == 255).all() and (pixels[:, content_w:] == 255).all()


def test_padding_is_white_at_the_bottom_for_landscape() -> None:
    out = hd_transform(Image.new("RGB", (1280, 720), (0, 0, 0)), 24)
    pixels = np.asarray(out.canvas)
    assert out.canvas.size == (1680, 1120)
    assert (pixels[:945] == 0).all()  # int(1680 / (1280 / 720)) = 945 rows of content
    assert (pixels[945:] == 255).all()


def test_padding_is_white_on_the_right_for_portrait() -> None:
    out = hd_transform(Image.new("RGB", (720, 1280), (0, 0, 0)), 24)
    pixels = np.asarray(out.canvas)
    assert out.canvas.size == (1120, 1680)
    assert (pixels[:, :945] == 0).all()
    assert (pixels[:, 945:] == 255).all()


def test_normalised_values_of_a_solid_colour() -> None:
    colour = (12, 128, 250)
    out = hd_transform(Image.new("RGB", (1280, 720), colour), 24)
    expected = (torch.tensor(colour, dtype=torch.float32) / 255 - MEAN.view(3)) / STD.view(3)
    white = (torch.ones(3) - MEAN.view(3)) / STD.view(3)
    values = out.pixel_values[0]
    for channel in range(3):
        assert torch.equal(values[channel, :945].unique(), expected[channel : channel + 1])
        assert torch.equal(values[channel, 945:].unique(), white[channel : channel + 1])
    # Independent of the arithmetic above: what the CLIP statistics give for white and for (12, 128, 250).
    assert values[:, -1, -1].tolist() == pytest.approx([1.9303, 2.0749, 2.1459], abs=1e-4)
    assert values[:, 0, 0].tolist() == pytest.approx([-1.6171, 0.1689, 2.0748], abs=1e-4)


def test_normalize_is_to_tensor_then_normalize() -> None:
    strip = _noise(560, 1120, seed=3)
    tensor = torch.from_numpy(np.array(strip)).permute(2, 0, 1).float().div(255)
    assert torch.equal(normalize(strip), ((tensor - MEAN) / STD).unsqueeze(0))


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK"])
def test_only_rgb_is_accepted(mode: str) -> None:
    image = Image.new(mode, (10, 10))
    with pytest.raises(ValueError, match="expected an RGB image"):
        hd_transform(image)
    with pytest.raises(ValueError, match="expected an RGB image"):
        normalize(image)


def _reference_sizes(width: int, height: int, hd_num: int) -> tuple[int, int]:
    """The reference's new_w/new_h in landscape orientation, with numpy as it has it."""
    if width < height:
        width, height = height, width
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    new_w = int(min(np.ceil(width / 560), scale - 1) * 560)
    return new_w, max(1, int(new_w / ratio))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 20_000), st.integers(1, 20_000), st.integers(1, 40))
def test_grid_properties(width: int, height: int, hd_num: int) -> None:
    grid = hd_grid(width, height, hd_num)
    assert 1 <= grid.rows * grid.cols <= hd_num
    canvas_w, canvas_h = grid.canvas_size
    assert canvas_w % CROP == 0 and canvas_h % CROP == 0
    assert grid.transposed == (width < height)
    long_side, content_long, content_short = (
        (height, grid.resized[1], grid.resized[0]) if grid.transposed else (width, *grid.resized)
    )
    # Never upscaled past the next multiple of 560, and the crops are exactly what the content needs.
    assert content_long <= math.ceil(long_side / CROP) * CROP
    assert content_long % CROP == 0
    assert grid.resized[0] <= canvas_w < grid.resized[0] + CROP
    assert grid.resized[1] <= canvas_h < grid.resized[1] + CROP
    assert (content_long, content_short) == _reference_sizes(width, height, hd_num)
    assert grid.num_tokens == (grid.rows * grid.cols + 1) * 400 + 1 + (grid.rows + 1) * 20


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 1400),
    st.integers(1, 1400),
    st.integers(1, 30),
    st.sampled_from(["reference", "demo_single", "demo_multi"]),
)
def test_any_size_matches_reference_pipeline(width: int, height: int, hd_num: int, variant: str) -> None:
    image = _gradient(width, height)
    _assert_same(hd_transform(image, hd_num, variant), *_reference(image, hd_num, variant))  # type: ignore[arg-type]
