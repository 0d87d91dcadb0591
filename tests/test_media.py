"""Upload validation and the content-addressed media store, on files made here (PIL, numpy, PyAV)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ixc_app.chat.ingest import media_limits
from ixc_app.config import Limits
from ixc_app.media import (
    VIDEO_STRIP,
    CorruptImage,
    DecompressionBomb,
    EmptyFile,
    FileTooLarge,
    ImageTooLarge,
    MediaLimits,
    MediaNotFound,
    MediaRejected,
    MediaStore,
    NotMedia,
    TruncatedImage,
    UnreadableVideo,
    VideoTooLarge,
    VideoTooLong,
    inspect_media,
    load_rgb,
)

LIMITS = media_limits(Limits())


def _limits(**changes: float) -> MediaLimits:
    return dataclasses.replace(LIMITS, **changes)


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def _image_file(tmp_path: Path, name: str, image: Image.Image, fmt: str, **save: object) -> Path:
    path = tmp_path / name
    image.save(path, fmt, **save)
    return path


def _noise(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int, idat: bytes = b"", padding: int = 0) -> bytes:
    """A PNG that declares `width` x `height` but holds (almost) no pixel data: no pixels are allocated.
    `padding` bytes of a private ancillary chunk make the file as big as real pixels of that size can be."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + (_png_chunk(b"prVt", bytes(padding)) if padding else b"")
        + _png_chunk(b"IDAT", idat or zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _video_file(path: Path, seconds: int, fps: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            rgb = np.full((height, width, 3), (i * 40) % 256, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


def _audio_only_file(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def _data_files(store: MediaStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()]


# accepted images and the store


def test_png_is_stored_under_its_sha256_once(tmp_path: Path, store: MediaStore) -> None:
    path = _image_file(tmp_path, "chart.png", _noise(40, 30), "PNG")
    stored = store.add(path, "chart.png", LIMITS)
    assert stored.key == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (stored.kind, stored.name, stored.mime, stored.width, stored.height) == (
        "image",
        "chart.png",
        "image/png",
        40,
        30,
    )
    assert stored.path.read_bytes() == path.read_bytes()
    assert stored.path.suffix == ".png"
    again = store.add(path, "same-photo-other-name.png", LIMITS)
    assert again.key == stored.key and again.name == "chart.png"
    assert _data_files(store) == [stored.path]  # the served folder holds the media files and nothing else
    assert MediaStore(store.root).get(stored.key) == stored  # the index survives a restart
    assert np.array_equal(np.asarray(store.load_image(stored.key)), np.asarray(_noise(40, 30)))


def test_reupload_restarts_the_eviction_clock(tmp_path: Path, store: MediaStore) -> None:
    path = _image_file(tmp_path, "a.png", _noise(8, 8), "PNG")
    stored = store.add(path, "a.png", LIMITS)
    os.utime(stored.path, (1000, 1000))
    store.add(path, "a.png", LIMITS)
    assert stored.path.stat().st_mtime > 1000


def test_format_comes_from_content_not_name(tmp_path: Path, store: MediaStore) -> None:
    png = _image_file(tmp_path, "really-a-png.mp4", _noise(8, 8), "PNG")
    stored = store.add(png, "really-a-png.mp4", LIMITS)
    assert (stored.kind, stored.mime, stored.path.suffix) == ("image", "image/png", ".png")
    video = _video_file(tmp_path / "clip.mp4", seconds=1)
    renamed = video.rename(tmp_path / "clip.jpg")
    stored_video = store.add(renamed, "clip.jpg", LIMITS)
    assert (stored_video.kind, stored_video.mime, stored_video.path.suffix) == ("video", "video/mp4", ".mp4")


def test_entries_path_and_delete(tmp_path: Path, store: MediaStore) -> None:
    stored = store.add(_image_file(tmp_path, "a.png", _noise(8, 8), "PNG"), "a.png", LIMITS)
    index_size = (tmp_path / "media-private" / "index" / stored.key[:2] / f"{stored.key}.json").stat().st_size
    (entry,) = store.entries()
    assert (entry.key, entry.size) == (stored.key, stored.size + index_size)
    assert store.total_bytes() == entry.size
    assert store.path(stored.key) == stored.path
    assert store.delete(stored.key)
    assert store.get(stored.key) is None and not stored.path.exists()
    assert store.entries() == [] and store.total_bytes() == 0
    with pytest.raises(MediaNotFound, match="no longer stored"):
        store.path(stored.key)
    assert not store.delete(stored.key)


# videos


def test_video_is_probed_and_its_strip_is_what_the_model_sees(tmp_path: Path, store: MediaStore) -> None:
    stored = store.add(_video_file(tmp_path / "clip.mp4", seconds=2), "clip.mp4", LIMITS)
    assert (stored.kind, stored.mime, stored.width, stored.height) == ("video", "video/mp4", 64, 48)
    assert stored.video is not None
    assert (stored.video.duration_s, stored.video.fps, stored.video.frame_count) == (2.0, 2.0, 4)
    with pytest.raises(ValueError, match="is a video"):
        store.load_image(stored.key)
    strip = Image.new("RGB", (560, 1120), (10, 20, 30))
    derived = store.save_derived(stored.key, VIDEO_STRIP, strip)
    assert (derived.derived_from, derived.mime, derived.width, derived.height) == (
        stored.key,
        "image/png",
        560,
        1120,
    )
    assert derived.key == hashlib.sha256(derived.path.read_bytes()).hexdigest()
    assert np.array_equal(np.asarray(store.load_image(derived.key)), np.asarray(strip))
    assert store.get(stored.key).derived == {VIDEO_STRIP: derived.key}  # type: ignore[union-attr]
    assert MediaStore(store.root).get(stored.key).derived == {VIDEO_STRIP: derived.key}  # type: ignore[union-attr]


def test_zero_byte_video(tmp_path: Path, store: MediaStore) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"")
    with pytest.raises(EmptyFile) as err:
        store.add(path, "clip.mp4", LIMITS)
    assert str(err.value) == "'clip.mp4' is empty (0 bytes); upload the file again."


@pytest.mark.parametrize("what", ["garbage after an MP4 header", "audio only"])
def test_unreadable_video(tmp_path: Path, store: MediaStore, what: str) -> None:
    path = tmp_path / "clip.mp4"
    if what == "audio only":
        _audio_only_file(path)
    else:
        path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8)
    with pytest.raises(UnreadableVideo) as err:
        store.add(path, "clip.mp4", LIMITS)
    assert str(err.value) == (
        "'clip.mp4' could not be played as a video (it is damaged, has no video frames or uses a format that "
        "cannot be decoded); convert it to MP4 (H.264) and upload it again."
    )
    assert _data_files(store) == []


def test_over_long_video(tmp_path: Path, store: MediaStore) -> None:
    path = _video_file(tmp_path / "long.mp4", seconds=3)
    with pytest.raises(VideoTooLong) as err:
        store.add(path, "long.mp4", _limits(max_video_seconds=2))
    assert (
        str(err.value)
        == "'long.mp4' is 3 seconds long, over the 2-second limit; trim it and upload it again."
    )
    assert store.add(path, "long.mp4", _limits(max_video_seconds=3)).video.duration_s == 3.0  # type: ignore[union-attr]


def test_video_frames_over_the_pixel_limit(tmp_path: Path, store: MediaStore) -> None:
    path = _video_file(tmp_path / "wide.mp4", seconds=1, size=(96, 64))
    with pytest.raises(VideoTooLarge) as err:
        store.add(path, "wide.mp4", _limits(max_pixels=96 * 64 - 1))
    assert str(err.value) == (
        "'wide.mp4' has 96x64-pixel frames (0.00614 megapixels), over the 0.00614-megapixel limit; scale the "
        "video down and upload it again."
    )
    assert _data_files(store) == []
    assert store.add(path, "wide.mp4", _limits(max_pixels=96 * 64)).kind == "video"


def test_over_size_video(tmp_path: Path, store: MediaStore) -> None:
    path = tmp_path / "clip.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 3 * 1024**2)
    with pytest.raises(FileTooLarge) as err:
        store.add(path, "clip.webm", _limits(max_video_bytes=2 * 1024**2))
    assert str(err.value) == "'clip.webm' is 3 MB, over the 2 MB limit for videos; upload a smaller file."


# rejected images


def test_renamed_text_file(tmp_path: Path, store: MediaStore) -> None:
    path = tmp_path / "notes.png"
    path.write_text("Meeting notes\n- send the slides\n", encoding="utf-8")
    with pytest.raises(NotMedia) as err:
        store.add(path, "notes.png", LIMITS)
    assert str(err.value) == (
        "'notes.png' is not an image or a video that can be read here; upload a JPEG, PNG, WebP, GIF, BMP or "
        "TIFF image, or an MP4, WebM, MKV, MOV or AVI video."
    )
    assert _data_files(store) == []


def test_formats_outside_the_list_are_not_opened(tmp_path: Path, store: MediaStore) -> None:
    path = tmp_path / "figure.eps"  # Pillow would hand this to Ghostscript
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(NotMedia):
        store.add(path, "figure.eps", LIMITS)


def test_corrupt_image(tmp_path: Path, store: MediaStore) -> None:
    buffer = io.BytesIO()
    _noise(64, 64).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.find(b"IDAT") + 20
    data[start : start + 200] = bytes(b ^ 0x5A for b in data[start : start + 200])
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptImage) as err:
        store.add(path, "broken.png", LIMITS)
    assert type(err.value) is CorruptImage
    assert (
        str(err.value)
        == "'broken.png' is a damaged PNG image that cannot be decoded; upload the original again."
    )
    assert _data_files(store) == []


def _bmp_with_depth_zero() -> bytes:
    buffer = io.BytesIO()
    _noise(4, 4).save(buffer, "BMP")
    data = bytearray(buffer.getvalue())
    data[28:30] = struct.pack("<H", 0)  # bits per pixel
    return bytes(data)


def _webp_with_zeroed_bitstream() -> bytes:
    buffer = io.BytesIO()
    _noise(4, 4).save(buffer, "WEBP")
    data = buffer.getvalue()
    return data[:20] + bytes(len(data) - 20)


@pytest.mark.parametrize(
    ("name", "make"), [("photo.bmp", _bmp_with_depth_zero), ("photo.webp", _webp_with_zeroed_bitstream)]
)
def test_damaged_image_header(
    tmp_path: Path, store: MediaStore, name: str, make: Callable[[], bytes]
) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(CorruptImage) as err:
        store.add(path, name, LIMITS)
    assert str(err.value) == f"'{name}' is an image whose header is damaged; upload the original again."
    assert _data_files(store) == []


def test_truncated_jpeg(tmp_path: Path, store: MediaStore) -> None:
    whole = _image_file(tmp_path, "whole.jpg", _noise(64, 64), "JPEG").read_bytes()
    path = tmp_path / "photo.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TruncatedImage) as err:
        store.add(path, "photo.jpg", LIMITS)
    assert str(err.value) == (
        "'photo.jpg' is incomplete (its JPEG data ends early, as after an interrupted transfer); upload the "
        "complete file again."
    )


@pytest.mark.parametrize("size", [(50_000, 50_000), (12_000, 5_000)])
def test_decompression_bomb(tmp_path: Path, store: MediaStore, size: tuple[int, int]) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(*size))
    with pytest.raises(DecompressionBomb) as err:
        store.add(path, "bomb.png", LIMITS)
    assert str(err.value) == (
        "'bomb.png' declares an image too large to open safely (a possible decompression bomb); upload an "
        "ordinary image of at most 50 megapixels."
    )


def test_over_pixel_limit_is_refused_from_the_header(tmp_path: Path, store: MediaStore) -> None:
    # The pixel data is garbage: refusing with the size (not as damaged) shows nothing was decoded.
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(200, 100, idat=os.urandom(4096)))
    with pytest.raises(ImageTooLarge) as err:
        store.add(path, "big.png", _limits(max_pixels=10_000))
    assert str(err.value) == (
        "'big.png' is 200x100 pixels (0.02 megapixels), over the 0.01-megapixel limit; scale it down and "
        "upload it again."
    )


def test_pixel_limit_is_the_apps_not_pillows(tmp_path: Path, store: MediaStore) -> None:
    # 13,500 x 13,500 = 182 megapixels: Pillow alone refuses this as a bomb and warns from 89 megapixels.
    # Padded to a size real pixels could fit in, the file is judged only by the app's limit, from its header.
    side = 13_500
    path = tmp_path / "scan.png"
    path.write_bytes(_png_header_only(side, side, idat=os.urandom(64), padding=side * side // 1024))
    with pytest.raises(ImageTooLarge) as err:
        store.add(path, "scan.png", _limits(max_pixels=150_000_000))
    assert str(err.value) == (
        "'scan.png' is 13500x13500 pixels (182 megapixels), over the 150-megapixel limit; scale it down and "
        "upload it again."
    )


def test_over_size_image(tmp_path: Path, store: MediaStore) -> None:
    path = _image_file(tmp_path, "photo.bmp", _noise(100, 100), "BMP")  # 54 + 100*100*3 = 30054 bytes
    with pytest.raises(FileTooLarge) as err:
        store.add(path, "photo.bmp", _limits(max_image_bytes=20 * 1024))
    assert str(err.value) == "'photo.bmp' is 29.3 KB, over the 20 KB limit for images; upload a smaller file."


def test_rejections_are_value_errors_with_the_name() -> None:
    err = EmptyFile("a.png")
    assert isinstance(err, MediaRejected) and isinstance(err, ValueError) and err.name == "a.png"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        _limits(max_pixels=0)


# conversion to what the model sees


def _pixels(
    store: MediaStore, tmp_path: Path, name: str, image: Image.Image, fmt: str, **save: object
) -> list:
    stored = store.add(_image_file(tmp_path, name, image, fmt, **save), name, LIMITS)
    rgb = store.load_image(stored.key)
    assert rgb.mode == "RGB" and rgb.size == image.size
    return [rgb.getpixel((x, 0)) for x in range(image.width)]


def test_rgba_is_laid_on_white(tmp_path: Path, store: MediaStore) -> None:
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    assert _pixels(store, tmp_path, "a.png", image, "PNG") == [(255, 255, 255), (0, 0, 255), (127, 127, 127)]


def test_la_is_laid_on_white(tmp_path: Path, store: MediaStore) -> None:
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 0), (40, 255)])
    assert _pixels(store, tmp_path, "a.png", image, "PNG") == [(255, 255, 255), (40, 40, 40)]


def test_palette_with_transparency_is_laid_on_white(tmp_path: Path, store: MediaStore) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.putdata([0, 1])
    assert _pixels(store, tmp_path, "a.gif", image, "GIF", transparency=0) == [(255, 255, 255), (200, 10, 10)]


def test_cmyk_becomes_rgb(tmp_path: Path, store: MediaStore) -> None:
    image = Image.new("CMYK", (2, 1))
    image.putdata([(0, 255, 255, 0), (0, 0, 0, 255)])
    assert _pixels(store, tmp_path, "a.tiff", image, "TIFF") == [(255, 0, 0), (0, 0, 0)]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path, store: MediaStore) -> None:
    image = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert image.mode == "I;16"
    assert _pixels(store, tmp_path, "a.png", image, "PNG") == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_float_grey_in_0_1_is_scaled(tmp_path: Path, store: MediaStore) -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    assert _pixels(store, tmp_path, "a.tiff", image, "TIFF") == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_exif_rotation_is_applied(tmp_path: Path, store: MediaStore) -> None:
    image = Image.new("RGB", (60, 30), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 30, 30))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the left edge becomes the top
    path = _image_file(tmp_path, "phone.jpg", image, "JPEG", exif=exif.tobytes(), quality=95)
    stored = store.add(path, "phone.jpg", LIMITS)
    assert (stored.width, stored.height) == (30, 60)
    rgb = store.load_image(stored.key)
    assert rgb.size == (30, 60)
    top, bottom = np.asarray(rgb)[5, 15].astype(int), np.asarray(rgb)[55, 15].astype(int)
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50
    assert inspect_media(path, "phone.jpg", LIMITS).width == 30
    assert load_rgb(path).size == (30, 60)


def test_leftovers_of_interrupted_uploads_are_swept(tmp_path: Path) -> None:
    MediaStore(tmp_path / "media")
    incoming = tmp_path / "media-private" / "incoming"
    old, young = incoming / "old", incoming / "young"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (1000, 1000))
    MediaStore(tmp_path / "media")
    assert not old.exists() and young.exists()
