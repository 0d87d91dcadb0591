"""Turning an uploaded file into a `MediaItem`: validated and stored once, a video's strip built at upload.
An attached text file is no media: its text is quoted into the message (`with_text_files`).

The frame strip is what the model sees of a video, so it is made here, while the user waits with a progress
bar, rather than in the middle of answering; every later turn, retry or restart reuses the stored strip. A
video the browser cannot play also gets a poster (its first frame, as it appears in the strip) for the chat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ixc_app.chat.conversation import MediaItem
from ixc_app.config import Limits
from ixc_app.i18n import tr
from ixc_app.ixc.video import LABEL_BAND, frame_size, video_transform
from ixc_app.media import (
    VIDEO_STRIP,
    MediaLimits,
    MediaStore,
    StoredMedia,
    UnreadableVideo,
    VideoError,
    video_composite,
)
from ixc_app.media.refusals import TextTooLong
from ixc_app.media.validate import is_text_file, read_text_file

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
"""`progress(fraction, step)` as a file is read: `step` says what is being done ("checking", "decoding frame
12/32", ...), in the language of the request that reads the file. It may raise to give up (a user's Stop):
the error reaches the caller, whose `added` list then names what was already stored of the file
(`ChatService.ingest` takes it back)."""

VIDEO_POSTER = "poster"
"""`save_derived` name of the still shown in place of a video the browser cannot play."""

_DECODE_START, _DECODE_END = 0.1, 0.9
"""The share of a video's progress before its frames are decoded (copying, checking, finding the frames) and
after (building the strip): decoding the sampled frames is most of the time."""

BROWSER_CODECS = {"video/mp4": frozenset({"h264"}), "video/webm": frozenset({"vp8", "vp9", "av1"})}
"""What browsers play (gradio6.md): H.264 in MP4, and WebM."""


def media_limits(limits: Limits) -> MediaLimits:
    """The media store's view of the app's limits (one upload size applies to images and videos alike)."""
    return MediaLimits(
        max_image_bytes=limits.max_upload_bytes,
        max_video_bytes=limits.max_upload_bytes,
        max_pixels=limits.max_image_pixels,
        max_video_seconds=limits.max_video_seconds,
    )


def ingest_upload(
    media: MediaStore,
    path: str | Path,
    limits: Limits,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    added: list[str] | None = None,
) -> MediaItem:
    """Validate and store `path` (shown as `name`, default its file name), or raise `MediaRejected`; keys
    stored anew are appended to `added` (`MediaStore.add`).

    The item carries this upload's own name even when the same content was stored before under another
    (the store keeps the first name): the chat captions it, and another user's file name is not theirs to see.
    """
    path = Path(path)
    if progress is not None:
        progress(0.0, tr("checking"))
    stored = media.add(path, name or path.name, media_limits(limits), added=added)
    stored = replace(stored, name=Path(name or path.name).name or stored.name)
    if stored.kind == "image":
        if progress is not None:
            progress(1.0, tr("ready"))
        return MediaItem(
            key=stored.key,
            kind="image",
            name=stored.name,
            mime=stored.mime,
            width=stored.width,
            height=stored.height,
        )
    return ingest_video(media, stored, progress, added)


def with_text_files(text: str, files: Sequence[str], max_chars: int) -> tuple[str, tuple[str, ...]]:
    """The message with each attached text file quoted into it, before what was typed, and the files left
    to ingest as media. Raises `MediaRejected` for a file that is not UTF-8 text, or when the message with
    the files' text would be over `max_chars`."""
    parts: list[str] = []
    media: list[str] = []
    for file in files:
        path = Path(file)
        if not is_text_file(path.name):
            media.append(file)
            continue
        parts.append(_quoted(path.name, read_text_file(path, path.name, max_chars)))
        length = len("\n\n".join([*parts, text]))
        if length > max_chars:
            raise TextTooLong(path.name, length, max_chars)
    if not parts:
        return text, tuple(media)
    return "\n\n".join([*parts, text] if text.strip() else parts), tuple(media)


def _quoted(name: str, text: str) -> str:
    """The file's name, then its text in a fenced block whose fence no line of the text can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{name}:\n{fence}\n{text.rstrip()}\n{fence}"


def is_browser_playable(stored: StoredMedia) -> bool:
    codec = stored.video.codec if stored.video else ""
    return codec in BROWSER_CODECS.get(stored.mime, frozenset())


def ingest_video(
    media: MediaStore,
    stored: StoredMedia,
    progress: Progress | None = None,
    added: list[str] | None = None,
) -> MediaItem:
    """The item for a stored video, building (or reusing, for content seen before) its strip and poster;
    `progress` hears of each sampled frame as it is decoded."""

    def report(fraction: float, step: str) -> None:
        if progress is not None:
            progress(fraction, step)

    def on_frame(done: int, total: int) -> None:
        fraction = _DECODE_START + (_DECODE_END - _DECODE_START) * done / total
        report(fraction, tr("decoding frame {done}/{total}", done=done, total=total))

    playable = is_browser_playable(stored)
    strip = _derived(media, stored, VIDEO_STRIP)
    poster = None if playable else _derived(media, stored, VIDEO_POSTER)
    if strip is None or (poster is None and not playable):
        report(_DECODE_START, tr("finding the frames"))
        try:
            composite, info = video_composite(stored.path, on_frame=on_frame)
        except VideoError as exc:
            raise UnreadableVideo(stored.name) from exc
        report(_DECODE_END, tr("building the frame strip"))
        strip = media.save_derived(stored.key, VIDEO_STRIP, video_transform(composite), added=added)
        if not playable:
            width, height = frame_size(info.width, info.height)
            first = composite.crop((0, LABEL_BAND, width, LABEL_BAND + height))
            poster = media.save_derived(stored.key, VIDEO_POSTER, first, added=added)
        log.info(
            "video %s: %d of %d frames (%s) -> strip %dx%d",
            stored.key[:12],
            len(info.indices),
            info.frame_count,
            info.decoding,
            strip.width,
            strip.height,
        )
    report(1.0, tr("ready"))
    return MediaItem(
        key=stored.key,
        kind="video",
        name=stored.name,
        mime=stored.mime,
        width=stored.width,
        height=stored.height,
        duration_s=stored.video.duration_s if stored.video else None,
        strip_key=strip.key,
        strip_width=strip.width,
        strip_height=strip.height,
        poster_key=poster.key if poster else None,
        playable=playable,
    )


def _derived(media: MediaStore, stored: StoredMedia, name: str) -> StoredMedia | None:
    key = stored.derived.get(name)
    return media.get(key) if key else None
