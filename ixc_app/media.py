"""Uploads, validated once and kept by content: the only way an image or video reaches the rest of the app.

An upload is judged by its bytes, never its name: images are whatever Pillow recognises among the formats
below, videos whatever starts like a video container and then plays for PyAV. Everything that can be checked
from a header (emptiness, byte size, pixel count, container) is checked before any pixels are decoded; then an
image is decoded in full once, so a damaged or cut-off file is refused at upload instead of failing (or, with
LMDeploy, silently turning into a black square) in the middle of a chat. Each refusal is a `MediaRejected`
subclass whose text is one sentence for the user.

Accepted files are stored under their sha256, so the same photo uploaded twice is stored once, and an image's
key doubles as the cache key of its vision features. `load_rgb` is the one place where stored images become
what the model sees: EXIF orientation applied, any colour mode converted to RGB, transparency laid on white.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ixc_app.ixc.video import VideoInfo, probe_video

MediaKind = Literal["image", "video"]

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
"""What Pillow may open (its JPEG opener also yields MPO, the multi-picture JPEG of phone cameras). Anything
else is not an image here: EPS, for one, would run Ghostscript."""

VIDEO_STRIP = "strip"
"""`save_derived` name of a video's labelled frame strip: what the model sees of that video."""

WHITE = (255, 255, 255)
_HEAD_BYTES = 512
_COPY_CHUNK = 1 << 20
_STALE_INCOMING_S = 3600.0
# Deflate cannot expand data more than ~1032:1 and JPEG needs bits for every 8x8 block, so a file declaring
# more than this many pixels per byte of itself cannot really hold them.
_BOMB_PIXELS_PER_BYTE = 1024
_HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_NON_VIDEO_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

# Pillow's own guard would refuse (as a "decompression bomb") images over about 179 megapixels, and warn over
# about 89, whatever --max-image-pixels allows. Every image here comes through `inspect_media`, which checks
# the header's pixel count against the app's limit and against the file's size before any pixel is decoded,
# so the process-wide guard is switched off rather than set from one caller's limits.
Image.MAX_IMAGE_PIXELS = None


class MediaRejected(ValueError):
    """An upload that cannot be used. `str()` is one sentence for the user: what was wrong, what to do."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class EmptyFile(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(name, f"'{name}' is empty (0 bytes); upload the file again.")


class FileTooLarge(MediaRejected):
    def __init__(self, name: str, size: int, limit: int, kind: MediaKind) -> None:
        super().__init__(
            name,
            f"'{name}' is {_bytes(size)}, over the {_bytes(limit)} limit for {kind}s; upload a smaller file.",
        )


class NotMedia(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            f"'{name}' is not an image or a video that can be read here; upload a JPEG, PNG, WebP, GIF, BMP "
            "or TIFF image, or an MP4, WebM, MKV, MOV or AVI video.",
        )


class CorruptImage(MediaRejected):
    def __init__(self, name: str, image_format: str, message: str | None = None) -> None:
        default = (
            f"'{name}' is a damaged {image_format} image that cannot be decoded; upload the original again."
        )
        super().__init__(name, message or default)


class TruncatedImage(CorruptImage):
    def __init__(self, name: str, image_format: str) -> None:
        super().__init__(
            name,
            image_format,
            f"'{name}' is incomplete (its {image_format} data ends early, as after an interrupted transfer); "
            "upload the complete file again.",
        )


class DecompressionBomb(MediaRejected):
    def __init__(self, name: str, max_pixels: int) -> None:
        super().__init__(
            name,
            f"'{name}' declares an image too large to open safely (a possible decompression bomb); upload an "
            f"ordinary image of at most {_megapixels(max_pixels)} megapixels.",
        )


class ImageTooLarge(MediaRejected):
    def __init__(self, name: str, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            name,
            f"'{name}' is {width}x{height} pixels ({_megapixels(width * height)} megapixels), over the "
            f"{_megapixels(max_pixels)}-megapixel limit; scale it down and upload it again.",
        )


class VideoTooLarge(MediaRejected):
    def __init__(self, name: str, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            name,
            f"'{name}' has {width}x{height}-pixel frames ({_megapixels(width * height)} megapixels), over "
            f"the {_megapixels(max_pixels)}-megapixel limit; scale the video down and upload it again.",
        )


class UnreadableVideo(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            f"'{name}' could not be played as a video (it is damaged, has no video frames or uses a format "
            "that cannot be decoded); convert it to MP4 (H.264) and upload it again.",
        )


class VideoTooLong(MediaRejected):
    def __init__(self, name: str, duration_s: float, max_seconds: float) -> None:
        super().__init__(
            name,
            f"'{name}' is {math.ceil(duration_s)} seconds long, over the {max_seconds:g}-second limit; "
            "trim it and upload it again.",
        )


class MediaNotFound(LookupError):
    """A key the store does not hold (never uploaded, or evicted since)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"The file {key[:12]} is no longer stored; attach it again.")
        self.key = key


def _bytes(n: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g}"


@dataclass(frozen=True)
class MediaLimits:
    """What an upload may be: built from the app's `config.Limits` (`chat.ingest.media_limits`), which holds
    the defaults, so this has none of its own. `max_pixels` bounds an image, and each frame of a video."""

    max_image_bytes: int
    max_video_bytes: int
    max_pixels: int
    max_video_seconds: float

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"MediaLimits.{f.name} must be positive, got {getattr(self, f.name)}")


@dataclass(frozen=True)
class MediaInfo:
    """What a valid upload is. `width` x `height` is the displayed size (after EXIF or video rotation)."""

    kind: MediaKind
    format: str
    mime: str
    ext: str
    width: int
    height: int
    video: VideoInfo | None = None


@dataclass(frozen=True)
class _Sniffed:
    kind: MediaKind
    format: str
    mime: str
    ext: str


def inspect_media(path: Path, name: str, limits: MediaLimits) -> MediaInfo:
    """Validate a file as an upload named `name` (as the user knows it), or raise a `MediaRejected`."""
    sniffed, size = _precheck(path, name, limits)
    if sniffed.kind == "video":
        return _inspect_video(path, name, sniffed, limits)
    width, height = _inspect_image(path, name, size, limits)
    return MediaInfo("image", sniffed.format, sniffed.mime, sniffed.ext, width, height)


def _precheck(path: Path, name: str, limits: MediaLimits) -> tuple[_Sniffed, int]:
    """The checks that need no decoding: empty, what it is, too many bytes for what it is."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(name)
    sniffed = _sniff(path, name)
    limit = limits.max_image_bytes if sniffed.kind == "image" else limits.max_video_bytes
    if size > limit:
        raise FileTooLarge(name, size, limit, sniffed.kind)
    return sniffed, size


def _sniff(path: Path, name: str) -> _Sniffed:
    """An image is what one of Pillow's openers accepts; a header an opener claims but then chokes on (BMP
    with pixel depth 0, WebP its decoder refuses, ...) makes a damaged image, not an unknown file."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            image_format = image.format or "image"
        return _Sniffed("image", image_format, _image_mime(image_format), _image_ext(image_format))
    except UnidentifiedImageError:
        pass
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptImage(
            name, "image", f"'{name}' is an image whose header is damaged; upload the original again."
        ) from exc
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    video = _video_container(head)
    if video is None:
        raise NotMedia(name)
    ext, mime = video
    return _Sniffed("video", ext.removeprefix("."), mime, ext)


def _image_ext(image_format: str) -> str:
    return {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tiff"}.get(image_format, "." + image_format.lower())


def _image_mime(image_format: str) -> str:
    """MPO is a JPEG with extra pictures appended; browsers know it only as JPEG."""
    return "image/jpeg" if image_format == "MPO" else Image.MIME.get(image_format, "image/*")


def _video_container(head: bytes) -> tuple[str, str] | None:
    """(extension, mime) of a video container recognised by its first bytes, or None."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _NON_VIDEO_BRANDS:
            return None
        if brand == b"qt  ":
            return ".mov", "video/quicktime"
        if brand.startswith(b"3g"):
            return ".3gp", "video/3gpp"
        return ".mp4", "video/mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return ".mov", "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return (".webm", "video/webm") if b"webm" in head[:64] else (".mkv", "video/x-matroska")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi", "video/x-msvideo"
    if head.startswith(b"FLV\x01"):
        return ".flv", "video/x-flv"
    if head.startswith(b"OggS"):
        return ".ogv", "video/ogg"
    if head.startswith(_ASF_GUID):
        return ".wmv", "video/x-ms-wmv"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return ".mpg", "video/mpeg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return ".ts", "video/mp2t"
    return None


def _inspect_image(path: Path, name: str, size: int, limits: MediaLimits) -> tuple[int, int]:
    """Pixel limits from the header, then one full decode; returns the displayed (oriented) size."""
    with Image.open(path, formats=IMAGE_FORMATS) as image:
        image_format = image.format or "image"
        width, height = image.size
        pixels = width * height
        if pixels > limits.max_pixels:
            if pixels > _BOMB_PIXELS_PER_BYTE * size:
                raise DecompressionBomb(name, limits.max_pixels)
            raise ImageTooLarge(name, width, height, limits.max_pixels)
        try:
            return _decode(image).size
        except Exception as exc:  # whatever a decoder raises on bad data, the file cannot be used
            if "truncated" in str(exc):
                raise TruncatedImage(name, image_format) from exc
            raise CorruptImage(name, image_format) from exc


def _inspect_video(path: Path, name: str, sniffed: _Sniffed, limits: MediaLimits) -> MediaInfo:
    try:
        video = probe_video(path)
    except ValueError as exc:
        raise UnreadableVideo(name) from exc
    if video.width * video.height > limits.max_pixels:
        raise VideoTooLarge(name, video.width, video.height, limits.max_pixels)
    if video.duration_s > limits.max_video_seconds:
        raise VideoTooLong(name, video.duration_s, limits.max_video_seconds)
    return MediaInfo("video", video.container, sniffed.mime, sniffed.ext, video.width, video.height, video)


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """A validated image file as the model sees it: EXIF orientation applied, RGB, transparency on white."""
    with Image.open(path, formats=IMAGE_FORMATS) as image:
        return _decode(image)


def _decode(image: Image.Image) -> Image.Image:
    """Decode every pixel, orient, convert. Validation runs exactly this, so a later load cannot fail."""
    image.load()
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB. Transparent pixels are composited on white (what a viewer shows on a
    light page, and what the reference's white padding expects); 16/32-bit grey is scaled, not clipped."""
    if image.mode in _HIGH_BIT_GREY or image.mode == "F":
        return Image.fromarray(_grey_to_8bit(image)).convert("RGB")
    transparent = image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info
    if not transparent:
        return image if image.mode == "RGB" else image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _grey_to_8bit(image: Image.Image) -> np.ndarray:
    """Integer grey is read as 16-bit (0..65535); float grey as 0..1 when it fits there, else as 0..255."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        values = np.nan_to_num(values)
        if values.size and values.max() <= 1.0:
            values = values * 255
    else:
        values = values / 257
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class StoredMedia:
    """An accepted file in the store. `derived` maps names (e.g. `VIDEO_STRIP`) to keys of images made from
    it; a derived image names its source in `derived_from`."""

    key: str
    kind: MediaKind
    path: Path
    name: str
    mime: str
    size: int
    width: int
    height: int
    video: VideoInfo | None = None
    derived_from: str | None = None
    derived: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaEntry:
    """One stored file, for size accounting and eviction (`Store.enforce_size_bound`)."""

    key: str
    size: int
    mtime: float


class MediaStore:
    """Accepted media: one `<key><ext>` file per item under `root`, and its `<key>.json` index under
    `private_root/index` (both sharded by the key's first two hex digits). `root` is served to browsers and
    holds nothing else: the indexes (original file names) and the uploads still being validated
    (`private_root/incoming`) stay in `private_root`, by default the sibling folder `<root>-private`. Writes
    go to a temporary file first and are renamed into place, so readers never see half a file and two
    uploads of the same content just write the same bytes twice."""

    def __init__(self, root: Path, private_root: Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        private = Path(private_root) if private_root else self.root.with_name(self.root.name + "-private")
        self._index_root = private / "index"
        self._index_root.mkdir(parents=True, exist_ok=True)
        self._incoming = private / "incoming"
        self._incoming.mkdir(exist_ok=True)
        self._sweep_incoming()
        self._lock = threading.Lock()
        self._items: dict[str, StoredMedia] = {}

    def add(self, src: Path, original_name: str, limits: MediaLimits) -> StoredMedia:
        """Validate an upload and store it, or raise `MediaRejected`. Identical content is stored once (the
        first upload's name is kept) and its clock restarted, so eviction treats it as just uploaded."""
        name = Path(original_name).name or "upload"
        _precheck(Path(src), name, limits)  # refuse what is plainly wrong before copying it
        staged, key = self._stage(Path(src))
        try:
            info = inspect_media(staged, name, limits)
            existing = self.get(key)
            if existing is not None:
                os.utime(existing.path)
                return existing
            stored = StoredMedia(
                key=key,
                kind=info.kind,
                path=self._data_path(key, info.ext),
                name=name,
                mime=info.mime,
                size=staged.stat().st_size,
                width=info.width,
                height=info.height,
                video=info.video,
            )
            stored.path.parent.mkdir(exist_ok=True)
            os.replace(staged, stored.path)
            self._write_index(stored)
            return stored
        finally:
            staged.unlink(missing_ok=True)

    def get(self, key: str) -> StoredMedia | None:
        if key in self._items:
            return self._items[key]
        index = self._index_path(key)
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        stored = self._from_json(key, data)
        if not stored.path.is_file():
            return None
        self._items[key] = stored
        return stored

    def path(self, key: str) -> Path:
        """Where the file of `key` is; `MediaNotFound` if it is not stored."""
        stored = self.get(key)
        if stored is None:
            raise MediaNotFound(key)
        return stored.path

    def load_image(self, ref: str | Path) -> Image.Image:
        """A stored image (by key, or by its path) as RGB with orientation and transparency handled."""
        if isinstance(ref, Path):
            return load_rgb(ref)
        stored = self.get(ref)
        if stored is None:
            raise MediaNotFound(ref)
        if stored.kind != "image":
            raise ValueError(f"{ref} is a video; load its '{VIDEO_STRIP}' derived image instead")
        return load_rgb(stored.path)

    def save_derived(self, key: str, name: str, image: Image.Image) -> StoredMedia:
        """Store an image made from item `key` (losslessly, as PNG) under its own content key, and record it
        on `key` under `name`."""
        source = self.get(key)
        if source is None:
            raise MediaNotFound(key)
        rgb = to_rgb(image)
        fd, tmp = tempfile.mkstemp(dir=self._incoming, suffix=".png")
        try:
            with os.fdopen(fd, "wb") as f:
                rgb.save(f, format="PNG", compress_level=1)
            derived_key = _sha256(Path(tmp))
            stored = self.get(derived_key)
            if stored is None:
                stored = StoredMedia(
                    key=derived_key,
                    kind="image",
                    path=self._data_path(derived_key, ".png"),
                    name=name,
                    mime="image/png",
                    size=Path(tmp).stat().st_size,
                    width=rgb.width,
                    height=rgb.height,
                    derived_from=key,
                )
                stored.path.parent.mkdir(exist_ok=True)
                os.replace(tmp, stored.path)
                self._write_index(stored)
        finally:
            Path(tmp).unlink(missing_ok=True)
        with self._lock:
            source = self.get(key) or source
            updated = dataclasses.replace(source, derived={**source.derived, name: stored.key})
            self._write_index(updated)
        return stored

    def entries(self) -> list[MediaEntry]:
        """Every stored item with its bytes on disk (file and index) and when it was last stored."""
        entries = []
        for index in self._index_root.glob("??/*.json"):
            key = index.stem
            stored = self.get(key)
            if stored is None:
                continue
            try:
                stat = stored.path.stat()
                size = stat.st_size + index.stat().st_size
            except FileNotFoundError:
                continue
            entries.append(MediaEntry(key=key, size=size, mtime=stat.st_mtime))
        return entries

    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries())

    def delete(self, key: str) -> bool:
        """Remove an item's file and index (not the items derived from it: they have their own keys)."""
        with self._lock:
            stored = self.get(key)
            self._items.pop(key, None)
            self._index_path(key).unlink(missing_ok=True)
            if stored is None:
                return False
            stored.path.unlink(missing_ok=True)
            return True

    def _sweep_incoming(self) -> None:
        """Drop copies left half-way by a crash; young ones may belong to an upload in progress elsewhere."""
        cutoff = time.time() - _STALE_INCOMING_S
        for leftover in self._incoming.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def _stage(self, src: Path) -> tuple[Path, str]:
        """Copy the upload into the store's own folder, hashing it on the way; validation reads this copy."""
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._incoming)
        try:
            with os.fdopen(fd, "wb") as out, src.open("rb") as f:
                while chunk := f.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), digest.hexdigest()

    def _data_path(self, key: str, ext: str) -> Path:
        return self.root / key[:2] / f"{key}{ext}"

    def _index_path(self, key: str) -> Path:
        return self._index_root / key[:2] / f"{key}.json"

    def _write_index(self, stored: StoredMedia) -> None:
        data: dict[str, Any] = {
            "kind": stored.kind,
            "file": stored.path.name,
            "name": stored.name,
            "mime": stored.mime,
            "size": stored.size,
            "width": stored.width,
            "height": stored.height,
            "video": dataclasses.asdict(stored.video) if stored.video else None,
            "derived_from": stored.derived_from,
            "derived": dict(stored.derived),
            "stored_at": time.time(),
        }
        index = self._index_path(stored.key)
        index.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=index.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, index)
        self._items[stored.key] = stored

    def _from_json(self, key: str, data: dict[str, Any]) -> StoredMedia:
        video = data.get("video")
        return StoredMedia(
            key=key,
            kind=data["kind"],
            path=self.root / key[:2] / data["file"],
            name=data["name"],
            mime=data["mime"],
            size=data["size"],
            width=data["width"],
            height=data["height"],
            video=VideoInfo(**video) if video else None,
            derived_from=data.get("derived_from"),
            derived=dict(data.get("derived", {})),
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
