"""The pure video facts: 1-fps sampling, frame and strip sizes, the strip transform, the composite layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageChops

from ixc_app.ixc.grid import image_token_count
from ixc_app.ixc.video import frame_composite, frame_size, sample_indices, strip_size, video_transform

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


# --- sampling -------------------------------------------------------------------------------------------


def test_sampling_takes_one_frame_per_second_from_frame_zero() -> None:
    assert sample_indices(300, 30.0) == list(range(0, 300, 30))
    assert sample_indices(31, 30.0) == [0, 30]


def test_sampling_a_clip_shorter_than_a_second_keeps_its_first_frame() -> None:
    assert sample_indices(20, 30.0) == [0]
    assert sample_indices(1, 24.0) == [0]
    assert sample_indices(0, 30.0) == []


def test_sampling_rounds_fractional_frame_rates_like_python_round() -> None:
    assert sample_indices(100, 29.97) == [0, 30, 60, 90]
    assert sample_indices(10, 2.5) == [0, 2, 4, 6, 8]  # round(2.5) == 2
    assert sample_indices(10, 3.5) == [0, 4, 8]  # round(3.5) == 4


def test_sampling_below_one_fps_takes_every_frame() -> None:
    assert sample_indices(5, 0.5) == [0, 1, 2, 3, 4]
    assert sample_indices(4, 0.2) == [0, 1, 2, 3]


def test_sampling_a_long_video_thins_to_32_evenly_spread_picks() -> None:
    picks = sample_indices(40 * 25, 25.0)  # 40 one-per-second frames, step 40/33
    kept = "0 1 2 3 4 6 7 8 9 10 12 13 14 15 16 18 19 20 21 23 24 25 26 27 29 30 31 32 33 35 36 37"
    assert picks == [25 * int(second) for second in kept.split()]


def test_sampling_keeps_the_reference_float_step() -> None:
    # 45 picks: step 45/33 makes 11 * step = 14.999..., so the reference takes pick 14, not 15.
    picks = sample_indices(45 * 30, 30.0)
    assert len(picks) == 32
    assert picks[11] == 14 * 30
    assert picks[22] == 29 * 30
    assert picks[-1] == 42 * 30


def test_sampling_honours_max_frames() -> None:
    assert sample_indices(100, 1.0, max_frames=4) == [0, 20, 40, 60]
    assert sample_indices(3, 1.0, max_frames=4) == [0, 1, 2]


@pytest.mark.parametrize(("total", "fps", "max_frames"), [(-1, 30.0, 32), (10, 30.0, 0)])
def test_sampling_rejects_nonsense(total: int, fps: float, max_frames: int) -> None:
    with pytest.raises(ValueError):
        sample_indices(total, fps, max_frames)


# --- sizes and the strip transform ---------------------------------------------------------------------


def test_frames_are_scaled_to_long_side_1120_truncating_the_other_side() -> None:
    assert frame_size(1280, 720) == (1120, 630)
    assert frame_size(333, 1000) == (372, 1120)  # 372.96 truncated
    assert frame_size(1000, 333) == (1120, 372)  # 372.96 truncated
    assert frame_size(500, 500) == (1120, 1120)


def test_worked_strip_sizes_of_the_spec() -> None:
    assert strip_size(1280, 720, 32) == (560, 11200)
    assert image_token_count(11200 // 560, 1) == 8821
    assert strip_size(1280, 720, 10) == (560, 3920)
    assert image_token_count(3920 // 560, 1) == 3361


@pytest.mark.parametrize(
    ("width", "height", "count"),
    [(1280, 720, 32), (1280, 720, 10), (720, 1280, 3), (1000, 1000, 2), (1921, 1079, 1), (333, 1000, 5)],
)
def test_strip_size_matches_the_real_output(width: int, height: int, count: int) -> None:
    frames = [Image.new("RGB", (width, height), (10 * i, 90, 200)) for i in range(count)]
    assert video_transform(frame_composite(frames)).size == strip_size(width, height, count)


def reference_video_transform(image: Image.Image) -> Image.Image:
    """The spec's Video_transform step by step: portrait transposed to landscape, short side resized to 560
    (long side truncated), transposed, bottom padded white to a multiple of 560, transposed back if it
    started landscape."""
    portrait = image.width < image.height
    if portrait:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    image = image.resize((int(560 * (image.width / image.height)), 560), Image.Resampling.BILINEAR)
    image = image.transpose(Image.Transpose.TRANSPOSE)
    padded = Image.new("RGB", (image.width, math.ceil(image.height / 560) * 560), WHITE)
    padded.paste(image, (0, 0))
    return padded if portrait else padded.transpose(Image.Transpose.TRANSPOSE)


@pytest.mark.parametrize(
    "size", [(1120, 6800), (1130, 2333), (2610, 1160), (777, 3001), (900, 900), (560, 1700)]
)
def test_video_transform_matches_the_reference_steps_pixel_for_pixel(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours = video_transform(image)
    assert ours.size == reference_video_transform(image).size
    assert ImageChops.difference(ours, reference_video_transform(image)).getbbox() is None


def test_video_transform_pads_white_at_the_end_of_the_long_side() -> None:
    tall = video_transform(Image.new("RGB", (1120, 1300), (0, 0, 255)))  # -> 560x650, padded to 560x1120
    assert tall.size == (560, 1120)
    assert tall.getpixel((280, 649)) == (0, 0, 255)
    assert tall.crop((0, 650, 560, 1120)).getcolors() == [(560 * 470, WHITE)]
    wide = video_transform(Image.new("RGB", (1300, 1120), (0, 0, 255)))
    assert wide.size == (1120, 560)
    assert wide.getpixel((649, 280)) == (0, 0, 255)
    assert wide.crop((650, 0, 1120, 560)).getcolors() == [(560 * 470, WHITE)]


# --- the composite -------------------------------------------------------------------------------------
