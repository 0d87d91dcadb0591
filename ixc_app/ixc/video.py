"""IXC-2.5 video input, the pure part: 1-fps sampling, the labelled frame composite, its strip transform.

The model was trained on a tall (or wide) strip of labelled frames, so a video has to become exactly that
image (spec section 4). Everything here is arithmetic and Pillow drawing on frames already decoded; reading
frames out of a video file (PyAV) is `ixc_app.media.frames`, which calls `sample_indices`, `fit_frame` and
`layout_frames`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from ixc_app.ixc.grid import CROP

DEFAULT_MAX_FRAMES = 32
FRAME_LONG_SIDE = 2 * CROP  # every sampled frame is resized so its long side is 1120
LABEL_BAND = 40  # white band above each frame holding its `<IMAGE i>` label
GAP = 10  # space after each frame; a separator line runs through the middle of the gaps between frames
LINE_WIDTH = 2
FONT_SIZE = 40


def sample_indices(total_frames: int, fps: float, max_frames: int = DEFAULT_MAX_FRAMES) -> list[int]:
    """The reference sampling: one frame per second (stride `round(fps)`, at least 1) from frame 0, thinned
    to `max_frames` evenly spread picks of that 1-fps list when the video is longer than that."""
    if total_frames < 0:
        raise ValueError(f"total_frames must not be negative, got {total_frames}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    per_second = list(range(0, total_frames, max(1, round(fps))))
    n = len(per_second)
    if n <= max_frames:
        return per_second
    step = n / (max_frames + 1)
    return [per_second[int(i * step)] for i in range(max_frames)]


def frame_size(width: int, height: int) -> tuple[int, int]:
    """A frame's size in the composite: long side 1120, the other side scaled and truncated (kept at least
    1 px, where the reference would fail on a ratio beyond 1120:1)."""
    ratio = width / height
    if width > height:
        return FRAME_LONG_SIDE, max(1, int(FRAME_LONG_SIDE / ratio))
    return max(1, int(FRAME_LONG_SIDE * ratio)), FRAME_LONG_SIDE


def composite_size(frame_width: int, frame_height: int, num_frames: int) -> tuple[int, int]:
    """Size of the labelled composite of `num_frames` frames of one size (each followed by a gap)."""
    w, h = frame_size(frame_width, frame_height)
    if frame_width > frame_height:
        return w, num_frames * (LABEL_BAND + h + GAP)
    return num_frames * (w + GAP), LABEL_BAND + h


def _scaled_size(width: int, height: int) -> tuple[int, int]:
    """`Video_transform`'s resize: short side 560, long side `int(560 * long / short)`."""
    if width < height:
        return CROP, int(CROP * (height / width))
    return int(CROP * (width / height)), CROP


def transform_size(width: int, height: int) -> tuple[int, int]:
    """`Video_transform`'s output size: the resized image with its long side padded up to whole crops."""
    w, h = _scaled_size(width, height)
    if width < height:
        return w, math.ceil(h / CROP) * CROP
    return math.ceil(w / CROP) * CROP, h


def strip_size(frame_width: int, frame_height: int, num_frames: int) -> tuple[int, int]:
    """The final strip's size from metadata alone, so the token budget needs no decoding."""
    if frame_width < 1 or frame_height < 1 or num_frames < 1:
        raise ValueError(
            f"need a positive frame size and count, got {frame_width}x{frame_height} x{num_frames}"
        )
    return transform_size(*composite_size(frame_width, frame_height, num_frames))


@functools.cache
def _label_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font: the reference's SimHei is a download; only the label text matters."""
    return ImageFont.load_default(size=FONT_SIZE)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def fit_frame(image: Image.Image) -> Image.Image:
    """A frame resized to its size in the composite (long side 1120)."""
    return image.resize(frame_size(*image.size), Image.Resampling.BILINEAR)


def frame_composite(frames: Sequence[Image.Image]) -> Image.Image:
    """Resize each frame to long side 1120 and lay them out with labels and separators (spec 4.2-4.3)."""
    if not frames:
        raise ValueError("a composite needs at least one frame")
    return layout_frames([fit_frame(_rgb(frame)) for frame in frames])


def layout_frames(fitted: Sequence[Image.Image]) -> Image.Image:
    """Place frames already at their composite size. The last frame's orientation (which resizing keeps)
    decides: landscape frames are stacked top to bottom, portrait and square ones placed left to right."""
    landscape = fitted[-1].width > fitted[-1].height
    if landscape:
        size = (max(f.width for f in fitted), sum(LABEL_BAND + f.height + GAP for f in fitted))
    else:
        size = (sum(f.width + GAP for f in fitted), LABEL_BAND + max(f.height for f in fitted))
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    font = _label_font()
    offset = 0
    for idx, frame in enumerate(fitted):
        last = idx + 1 == len(fitted)
        if landscape:
            canvas.paste(frame, (0, offset + LABEL_BAND))
            draw.text((0, offset), f"<IMAGE {idx}>", font=font, fill="black")
            line_y = offset + LABEL_BAND + frame.height + GAP // 2
            if not last:
                draw.line([(0, line_y), (size[0], line_y)], fill="black", width=LINE_WIDTH)
            offset += LABEL_BAND + frame.height + GAP
        else:
            canvas.paste(frame, (offset, LABEL_BAND))
            draw.text((offset, 0), f"<IMAGE {idx}>", font=font, fill="black")
            line_x = offset + frame.width + GAP // 2
            if not last:
                draw.line([(line_x, 0), (line_x, size[1])], fill="black", width=LINE_WIDTH)
            offset += frame.width + GAP
    return canvas


def video_transform(image: Image.Image) -> Image.Image:
    """The reference `Video_transform` (spec 4.4): short side to 560, long side padded white at its end.

    The reference resizes portrait images transposed, so PIL resamples along their long (vertical) axis
    first; two single-axis resizes in that order give the same pixels without two full-size transposes.
    """
    image = _rgb(image)
    width, height = image.size
    new_w, new_h = _scaled_size(width, height)
    if width < height:
        scaled = image.resize((width, new_h), Image.Resampling.BILINEAR)
        scaled = scaled.resize((new_w, new_h), Image.Resampling.BILINEAR)
    else:
        scaled = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    strip = Image.new("RGB", transform_size(width, height), "white")
    strip.paste(scaled, (0, 0))
    return strip
