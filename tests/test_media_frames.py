"""Video probing and decoding into the labelled composite, on clips generated here with PyAV.

Every generated frame carries its own frame number: four vertical blocks, each a base-6 digit drawn as one of
six grey levels (least significant digit on the left), so a decoded frame says which frame it is.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from ixc_app.ixc.video import frame_composite, sample_indices
from ixc_app.media import frames
from ixc_app.media.frames import video_composite
from ixc_app.media.probe import VideoError, probe_video

LEVELS = (20, 60, 100, 140, 180, 220)
DIGITS = 4
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def frame_pixels(number: int, width: int, height: int) -> np.ndarray:
    pixels = np.empty((height, width, 3), np.uint8)
    for block in range(DIGITS):
        pixels[:, block * width // DIGITS : (block + 1) * width // DIGITS] = LEVELS[number % 6]
        number //= 6
    return pixels


def read_number(frame: Image.Image) -> int:
    """The frame number drawn by `frame_pixels`, read at the centre of each block."""
    number = 0
    for block in reversed(range(DIGITS)):
        level = frame.getpixel(((2 * block + 1) * frame.width // (2 * DIGITS), frame.height // 2))[0]
        number = number * 6 + min(range(6), key=lambda d: abs(LEVELS[d] - level))
    return number


def write_clip(
    path: Path,
    *,
    frames: int,
    fps: int,
    size: tuple[int, int] = (320, 180),
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 3,
    rotation: int | None = None,
    container_format: str | None = None,
) -> Path:
    width, height = size
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            # With B-frames, frames leave the decoder out of decode order; scene-cut keyframes are off, so
            # keyframes fall exactly every `gop` frames.
            stream.options = {"preset": "veryfast", "crf": "12", "bf": str(bframes), "sc_threshold": "0"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for number in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(number, width, height), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_all(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        # 4.5 s at 4 fps -> frames 0, 4, ..., 16; GOP 7 so most sampled frames sit between keyframes.
        "landscape": write_clip(folder / "landscape.mp4", frames=18, fps=4, gop=7, bframes=0),
        "portrait": write_clip(folder / "portrait.mp4", frames=10, fps=4, size=(180, 320), gop=7),
        # 40 s at 3 fps: 40 one-per-second picks thinned to 32, one keyframe only.
        "long_gop": write_clip(folder / "long_gop.mp4", frames=120, fps=3, size=(96, 64), gop=250),
        "rotated": write_clip(folder / "rotated.mp4", frames=8, fps=4, gop=5, rotation=90),
        # keyframes every 5 frames with B-frames: sampled frame 4 sits just before keyframe 5
        "before_keyframes": write_clip(folder / "before_keyframes.mp4", frames=20, fps=4, gop=5),
    }


def label(k: int) -> Image.Image:
    """`<IMAGE k>` drawn black at the top-left of a white 300x40 band in Pillow's bundled 40-px font."""
    band = Image.new("RGB", (300, 40), WHITE)
    ImageDraw.Draw(band).text((0, 0), f"<IMAGE {k}>", font=ImageFont.load_default(size=40), fill="black")
    return band


def is_white(region: Image.Image) -> bool:
    return region.getcolors() == [(region.width * region.height, WHITE)]


def test_layout_follows_the_last_frames_orientation() -> None:
    tall, wide = Image.new("RGB", (100, 200), (9, 9, 9)), Image.new("RGB", (200, 100), (9, 9, 9))
    stacked = frame_composite([tall, wide])  # last is landscape: top to bottom, as wide as the widest
    assert stacked.size == (1120, (40 + 1120 + 10) + (40 + 560 + 10))
    assert is_white(stacked.crop((560, 40, 1120, 40 + 1120)))  # right of the narrower portrait frame
    side_by_side = frame_composite([wide, tall])  # last is portrait: left to right
    assert side_by_side.size == ((1120 + 10) + (560 + 10), 40 + 1120)
    assert is_white(side_by_side.crop((0, 40 + 560, 1120, 40 + 1120)))  # below the shorter landscape frame


def test_landscape_composite_stacks_labelled_frames(clips: dict[str, Path]) -> None:
    composite, info = video_composite(clips["landscape"])
    assert info.indices == (0, 4, 8, 12, 16)
    assert (info.width, info.height) == (320, 180)
    frame_h = 630  # 320x180 scaled to long side 1120
    pitch = 40 + frame_h + 10
    assert composite.size == (1120, 5 * pitch)
    for k, index in enumerate(info.indices):
        top = k * pitch
        band = composite.crop((0, top, 1120, top + 40))
        assert ImageChops.difference(band.crop((0, 0, 300, 40)), label(k)).getbbox() is None
        assert is_white(band.crop((300, 0, 1120, 40))), "band must be white right of the label"
        frame = composite.crop((0, top + 40, 1120, top + 40 + frame_h))
        assert read_number(frame) == index
        assert not is_white(frame.crop((0, 0, 1120, 1))) and not is_white(
            frame.crop((0, frame_h - 1, 1120, frame_h))
        )
        gap = top + 40 + frame_h
        if k + 1 < len(info.indices):
            assert is_white(composite.crop((0, gap, 1120, gap + 5)))
            line = composite.crop((0, gap + 5, 1120, gap + 7))
            assert line.getcolors() == [(2 * 1120, BLACK)], "2-px line across the full width"
            assert is_white(composite.crop((0, gap + 7, 1120, gap + 10)))
        else:
            assert is_white(composite.crop((0, gap, 1120, gap + 10))), "no line after the last frame"


def test_portrait_composite_places_labelled_frames_side_by_side(clips: dict[str, Path]) -> None:
    composite, info = video_composite(clips["portrait"])
    assert info.indices == (0, 4, 8)
    frame_w = 630  # 180x320 scaled to long side 1120
    pitch = frame_w + 10
    assert composite.size == (3 * pitch, 40 + 1120)
    for k, index in enumerate(info.indices):
        left = k * pitch
        assert ImageChops.difference(composite.crop((left, 0, left + 300, 40)), label(k)).getbbox() is None
        assert is_white(composite.crop((left + 300, 0, left + frame_w, 40)))
        frame = composite.crop((left, 40, left + frame_w, 40 + 1120))
        assert read_number(frame) == index
        assert not is_white(frame.crop((0, 0, 1, 1120))) and not is_white(
            frame.crop((frame_w - 1, 0, frame_w, 1120))
        )
        gap = left + frame_w
        if k + 1 < len(info.indices):
            assert is_white(composite.crop((gap, 0, gap + 5, 1160)))
            assert composite.crop((gap + 5, 0, gap + 7, 1160)).getcolors() == [(2 * 1160, BLACK)]
            assert is_white(composite.crop((gap + 7, 0, gap + 10, 1160)))
        else:
            assert is_white(composite.crop((gap, 0, gap + 10, 1160)))


@pytest.mark.parametrize("clip", ["landscape", "portrait", "long_gop", "before_keyframes"])
def test_composite_equals_one_built_from_every_decoded_frame(clips: dict[str, Path], clip: str) -> None:
    """Seeking must return exactly the frames a full sequential decode finds at those indices."""
    composite, info = video_composite(clips[clip])
    assert info.decoding == "seek"
    every = decode_all(clips[clip])
    assert info.frame_count == len(every)
    expected = frame_composite([every[i] for i in info.indices])
    assert ImageChops.difference(composite, expected).getbbox() is None


def test_seeking_decodes_only_from_the_keyframe_before_each_sampled_frame(clips: dict[str, Path]) -> None:
    _, info = video_composite(clips["landscape"])
    # keyframes 0, 7, 14; samples 0, 4 | 8, 12 | 16: frames 0-4, 7-12 and 14-16 are decoded, 15-17 not
    # (no B-frames here, so every frame is a reference frame and none can be skipped)
    assert info.frames_decoded == 5 + 6 + 3
    _, info = video_composite(clips["long_gop"])
    # one keyframe, B-frames: carrying on from sample to sample decodes each frame at most once, and the
    # non-reference B-frames that are not sampled not at all
    assert len(info.indices) < info.frames_decoded < info.indices[-1] + 1


def test_long_video_samples_32_frames_with_timestamps(clips: dict[str, Path]) -> None:
    composite, info = video_composite(clips["long_gop"])
    assert info.frame_count == 120
    assert info.fps == 3.0
    assert info.duration_s == pytest.approx(40.0)
    assert info.indices == tuple(sample_indices(120, 3.0))
    assert len(info.indices) == 32
    assert info.timestamps_s == pytest.approx([i / 3 for i in info.indices])
    pitch = 40 + 746 + 10  # 96x64 -> 1120x746
    for k in (0, 11, 31):
        frame = composite.crop((0, k * pitch + 40, 1120, k * pitch + 40 + 746))
        assert read_number(frame) == info.indices[k]


def test_rotated_video_is_composited_as_displayed(clips: dict[str, Path]) -> None:
    composite, info = video_composite(clips["rotated"])
    assert (info.width, info.height) == (180, 320)  # stored 320x180, displayed turned 90 degrees
    assert info.indices == (0, 4)
    assert composite.size == (2 * (630 + 10), 40 + 1120)
    # turned counter-clockwise, the stored left edge (lowest digit) ends up at the bottom
    for k, index in enumerate(info.indices):
        column = k * 640 + 315
        assert composite.getpixel((column, 40 + 1120 - 100))[0] == pytest.approx(LEVELS[index % 6], abs=12)


@pytest.mark.skipif("libvpx-vp9" not in av.codecs_available, reason="no VP9 encoder in this PyAV build")
def test_webm_vp9_is_sampled_exactly(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.webm", frames=14, fps=3, codec="libvpx-vp9", gop=4)
    composite, info = video_composite(path)
    assert info.decoding == "seek"
    assert info.frame_count == 14
    assert info.indices == (0, 3, 6, 9, 12)
    every = decode_all(path)
    expected = frame_composite([every[i] for i in info.indices])
    assert ImageChops.difference(composite, expected).getbbox() is None


def test_seeking_that_lands_past_the_wanted_frame_falls_back_to_decoding_in_order(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulates a decoder that drops the first frames after a seek (as with open-GOP streams)."""
    honest = frames._decode_forward

    def dropping_first_frame(*args: object) -> object:
        frames = honest(*args)
        next(frames, None)
        yield from frames

    monkeypatch.setattr(frames, "_decode_forward", dropping_first_frame)
    composite, info = video_composite(clips["landscape"])
    assert info.decoding == "sequential"
    every = decode_all(clips["landscape"])
    expected = frame_composite([every[i] for i in info.indices])
    assert ImageChops.difference(composite, expected).getbbox() is None


def test_stream_without_timestamps_is_decoded_sequentially(tmp_path: Path) -> None:
    # A raw H.264 stream has no timestamps (and is read as 25 fps), so seeking cannot locate frames.
    path = write_clip(tmp_path / "raw.h264", frames=60, fps=25, container_format="h264")
    composite, info = video_composite(path)
    assert info.decoding == "sequential"
    assert info.frame_count == 60
    assert info.indices == (0, 25, 50)
    assert info.timestamps_s == pytest.approx([0.0, 1.0, 2.0])
    for k, index in enumerate(info.indices):
        assert read_number(composite.crop((0, k * 680 + 40, 1120, k * 680 + 670))) == index


# --- probing and rejections ----------------------------------------------------------------------------


def test_probe_reports_an_mp4(clips: dict[str, Path]) -> None:
    info = probe_video(clips["landscape"])
    assert "mp4" in info.container
    assert info.codec == "h264"
    assert (info.width, info.height, info.fps, info.frame_count) == (320, 180, 4.0, 18)
    assert info.duration_s == pytest.approx(4.5)
    assert info.rotation == 0
    assert not info.frame_count_estimated


def test_probe_reports_the_displayed_size_of_a_rotated_video(clips: dict[str, Path]) -> None:
    info = probe_video(clips["rotated"])
    assert (info.width, info.height, info.rotation) == (180, 320, 90)


@pytest.mark.skipif("libvpx-vp9" not in av.codecs_available, reason="no VP9 encoder in this PyAV build")
def test_probe_estimates_the_frame_count_of_a_webm(tmp_path: Path) -> None:
    info = probe_video(write_clip(tmp_path / "clip.webm", frames=15, fps=5, codec="libvpx-vp9"))
    assert "webm" in info.container
    assert info.codec == "vp9"
    assert info.frame_count_estimated
    assert info.frame_count == 15
    assert info.duration_s == pytest.approx(3.0)


def test_probe_counts_the_frames_of_a_raw_stream(tmp_path: Path) -> None:
    info = probe_video(write_clip(tmp_path / "raw.h264", frames=30, fps=25, container_format="h264"))
    assert (info.frame_count, info.frame_count_estimated, info.fps) == (30, False, 25.0)


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for _ in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def bad_input(kind: str, folder: Path) -> Path:
    if kind == "empty":
        path = folder / "empty.mp4"
        path.write_bytes(b"")
    elif kind == "text":
        path = folder / "notes.mp4"
        path.write_text("not a video\n" * 20)
    elif kind == "audio":
        path = audio_only(folder / "sound.m4a")
    else:
        path = folder / "still.png"
        Image.new("RGB", (32, 32), (1, 2, 3)).save(path)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "'empty.mp4' could not be opened as a video"),
        ("text", "'notes.mp4' could not be opened as a video"),
        ("audio", "'sound.m4a' has no video track; upload a file that contains video."),
        ("still", "'still.png' is a still image, not a video; upload it as an image instead."),
    ],
)
@pytest.mark.parametrize("reader", [probe_video, video_composite])
def test_unusable_files_are_rejected_with_a_clear_message(
    tmp_path: Path, kind: str, message: str, reader: object
) -> None:
    path = bad_input(kind, tmp_path)
    with pytest.raises(VideoError) as caught:
        reader(path)  # type: ignore[operator]
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(message)
