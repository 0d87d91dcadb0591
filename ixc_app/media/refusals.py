"""The typed refusals of an upload: each `str()` is one sentence for the user (what was wrong, what to do),
said in the language of the request that made it (`ixc_app.i18n.tr`)."""

from __future__ import annotations

import math
from typing import Literal

from ixc_app.i18n import tr

MediaKind = Literal["image", "video"]


class MediaRejected(ValueError):
    """An upload that cannot be used. `str()` is one sentence for the user: what was wrong, what to do."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class StorageFull(MediaRejected):
    """No room for an upload: the data dir's bound (`used`, `limit` in bytes) or the disk itself is full."""

    def __init__(self, used: int | None = None, limit: int | None = None) -> None:
        if limit is None:
            message = tr(
                "The server's disk is full, so the file could not be stored; send your message without "
                "attachments, or try again later."
            )
        else:
            message = tr(
                "The server's storage for uploads is full ({used:.1f} MB of {limit:.1f} MB used); delete "
                "conversations you no longer need, or send your message without attachments.",
                used=(used or 0) / 1024**2,
                limit=limit / 1024**2,
            )
        super().__init__("", message)


class EmptyFile(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(name, tr("'{name}' is empty (0 bytes); upload the file again.", name=name))


class FileTooLarge(MediaRejected):
    def __init__(self, name: str, size: int, limit: int, kind: MediaKind) -> None:
        if kind == "video":
            message = tr(
                "'{name}' is {size}, over the {limit} limit for videos; upload a smaller file.",
                name=name,
                size=_bytes(size),
                limit=_bytes(limit),
            )
        else:
            message = tr(
                "'{name}' is {size}, over the {limit} limit for images; upload a smaller file.",
                name=name,
                size=_bytes(size),
                limit=_bytes(limit),
            )
        super().__init__(name, message)


class NotMedia(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' is not an image or a video that can be read here; upload a JPEG, PNG, WebP, GIF, "
                "BMP or TIFF image, or an MP4, WebM, MKV, MOV or AVI video.",
                name=name,
            ),
        )


class CorruptImage(MediaRejected):
    def __init__(self, name: str, image_format: str, message: str | None = None) -> None:
        if message is None:
            message = tr(
                "'{name}' is a damaged {format} image that cannot be decoded; upload the original again.",
                name=name,
                format=image_format,
            )
        super().__init__(name, message)


class TruncatedImage(CorruptImage):
    def __init__(self, name: str, image_format: str) -> None:
        super().__init__(
            name,
            image_format,
            tr(
                "'{name}' is incomplete (its {format} data ends early, as after an interrupted transfer); "
                "upload the complete file again.",
                name=name,
                format=image_format,
            ),
        )


class DecompressionBomb(MediaRejected):
    def __init__(self, name: str, max_pixels: int) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' declares an image too large to open safely (a possible decompression bomb); upload "
                "an ordinary image of at most {most} megapixels.",
                name=name,
                most=_megapixels(max_pixels),
            ),
        )


class ImageTooLarge(MediaRejected):
    def __init__(self, name: str, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' is {width}x{height} pixels ({megapixels} megapixels), over the {most}-megapixel "
                "limit; scale it down and upload it again.",
                name=name,
                width=width,
                height=height,
                megapixels=_megapixels(width * height),
                most=_megapixels(max_pixels),
            ),
        )


class VideoTooLarge(MediaRejected):
    def __init__(self, name: str, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' has {width}x{height}-pixel frames ({megapixels} megapixels), over the "
                "{most}-megapixel limit; scale the video down and upload it again.",
                name=name,
                width=width,
                height=height,
                megapixels=_megapixels(width * height),
                most=_megapixels(max_pixels),
            ),
        )


class UnreadableVideo(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' could not be played as a video (it is damaged, has no video frames or uses a "
                "format that cannot be decoded); convert it to MP4 (H.264) and upload it again.",
                name=name,
            ),
        )


class VideoTooLong(MediaRejected):
    def __init__(self, name: str, duration_s: float, max_seconds: float) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' is {seconds} seconds long, over the {most:g}-second limit; trim it and upload it "
                "again.",
                name=name,
                seconds=math.ceil(duration_s),
                most=max_seconds,
            ),
        )


class NotText(MediaRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            tr("'{name}' is not UTF-8 text; save it as UTF-8 (plain text) and attach it again.", name=name),
        )


class TextTooLong(MediaRejected):
    def __init__(self, name: str, length: int, limit: int) -> None:
        super().__init__(
            name,
            tr(
                "With the text of '{name}' the message is {length:,} characters long, over the limit of "
                "{limit:,}; attach a shorter file or paste the part that matters.",
                name=name,
                length=length,
                limit=limit,
            ),
        )


class TextFileTooLarge(MediaRejected):
    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(
            name,
            tr(
                "'{name}' is {size}, more text than a message may hold ({limit:,} characters); attach a "
                "shorter file or paste the part that matters.",
                name=name,
                size=_bytes(size),
                limit=limit,
            ),
        )


class MediaNotFound(LookupError):
    """A key the store does not hold (never uploaded, or evicted since)."""

    def __init__(self, key: str) -> None:
        super().__init__(tr("The file {key} is no longer stored; attach it again.", key=key[:12]))
        self.key = key


def _bytes(n: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}".removesuffix(".0") + f" {unit}"
    return tr("{n} bytes", n=n)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g}"
