"""Upload validation: what a file is, judged by its bytes (its refusals are `refusals`).

An upload is judged by its bytes, never its name: images are whatever Pillow recognises among the formats of
`images.IMAGE_FORMATS`, videos whatever starts like a video container and then plays for PyAV. Everything that
can be checked from a header (emptiness, byte size, pixel count, container) is checked before any pixels are
decoded; then an image is decoded in full once, so a damaged or cut-off file is refused at upload instead of
failing (or, with LMDeploy, silently turning into a black square) in the middle of a chat.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ixc_app.media.images import IMAGE_FORMATS, decode_image
from ixc_app.media.probe import VideoInfo, probe_video
from ixc_app.media.refusals import (
    CorruptImage,
    DecompressionBomb,
    EmptyFile,
    FileTooLarge,
    ImageTooLarge,
    MediaKind,
    NotMedia,
    NotText,
    TextFileTooLarge,
    TruncatedImage,
    UnreadableVideo,
    VideoTooLarge,
    VideoTooLong,
)

_HEAD_BYTES = 512
# Deflate cannot expand data more than ~1032:1 and JPEG needs bits for every 8x8 block, so a file declaring
# more than this many pixels per byte of itself cannot really hold them.
_BOMB_PIXELS_PER_BYTE = 1024
_NON_VIDEO_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


TEXT_EXTENSIONS = frozenset((
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini",
    ".cfg", ".xml", ".html", ".css", ".log", ".tex", ".py", ".js", ".ts", ".jsx", ".tsx", ".java", ".kt",
    ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".swift", ".scala", ".r", ".m",
    ".sh", ".sql", ".lua", ".pl", ".dart", ".vue",
))  # fmt: skip
"""Files read into the message as text (by name: their bytes are any text), never stored as media."""
_UTF8_BYTES_PER_CHAR = 4


def is_text_file(name: str) -> bool:
    return Path(name).suffix.lower() in TEXT_EXTENSIONS


def read_text_file(path: Path, name: str, max_chars: int) -> str:
    """The text of an attached text file, or `NotText`; a file with more bytes than `max_chars` characters
    could take is refused before it is read."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(name)
    if size > _UTF8_BYTES_PER_CHAR * max_chars:
        raise TextFileTooLarge(name, size, max_chars)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotText(name) from exc
    if "\x00" in text:
        raise NotText(name)
    return text


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
    sniffed, size = precheck(path, name, limits)
    if sniffed.kind == "video":
        return _inspect_video(path, name, sniffed, limits)
    width, height = _inspect_image(path, name, size, limits)
    return MediaInfo("image", sniffed.format, sniffed.mime, sniffed.ext, width, height)


def precheck(path: Path, name: str, limits: MediaLimits) -> tuple[_Sniffed, int]:
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
            return decode_image(image).size
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
