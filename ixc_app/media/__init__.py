"""Uploads, validated once and kept by content: the only way an image or video reaches the rest of the app.

- `validate`: what a file is, judged by its bytes.
- `refusals`: the typed one-sentence refusals (`MediaRejected`), in the request's language.
- `images`: stored images as RGB pixels the way the model sees them (`load_rgb`); the function the engines
  receive to read images, so they import nothing of the app.
- `probe`: opening a video with PyAV and reading what it is (the upload check).
- `frames`: decoding the sampled frames into the labelled video composite, frame by frame with progress.
- `store`: the content-addressed files (`MediaStore`), keyed by sha256.
"""

from ixc_app.media.frames import FrameProgress, VideoCompositeInfo, video_composite
from ixc_app.media.images import IMAGE_FORMATS, load_rgb, to_rgb
from ixc_app.media.probe import VideoError, VideoInfo, probe_video
from ixc_app.media.refusals import (
    CorruptImage,
    DecompressionBomb,
    EmptyFile,
    FileTooLarge,
    ImageTooLarge,
    MediaKind,
    MediaNotFound,
    MediaRejected,
    NotMedia,
    StorageFull,
    TruncatedImage,
    UnreadableVideo,
    VideoTooLarge,
    VideoTooLong,
)
from ixc_app.media.store import VIDEO_STRIP, MediaEntry, MediaStore, StoredMedia
from ixc_app.media.validate import MediaInfo, MediaLimits, inspect_media

__all__ = [
    "IMAGE_FORMATS",
    "VIDEO_STRIP",
    "CorruptImage",
    "DecompressionBomb",
    "EmptyFile",
    "FileTooLarge",
    "FrameProgress",
    "ImageTooLarge",
    "MediaEntry",
    "MediaInfo",
    "MediaKind",
    "MediaLimits",
    "MediaNotFound",
    "MediaRejected",
    "MediaStore",
    "NotMedia",
    "StorageFull",
    "StoredMedia",
    "TruncatedImage",
    "UnreadableVideo",
    "VideoCompositeInfo",
    "VideoError",
    "VideoInfo",
    "VideoTooLarge",
    "VideoTooLong",
    "inspect_media",
    "load_rgb",
    "probe_video",
    "to_rgb",
    "video_composite",
]
