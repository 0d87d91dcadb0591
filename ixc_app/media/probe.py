"""Opening videos with PyAV and reading what they are, without decoding more than the first frame.

`probe_video` is the upload check (`media.validate`); the rest is shared with the decoder (`media.frames`):
opening a file with a one-sentence refusal, the video track, its timing, and the packet table that says where
every frame and keyframe is.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from fractions import Fraction

import av


class VideoError(ValueError):
    """A file that cannot be used as a video; the message is one sentence meant for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, from its metadata and its first frame.

    `frame_count` is the video stream's own frame count when the container stores one (MP4, MOV);
    containers that do not (WebM, MKV) get `round(duration_s * fps)`, and `frame_count_estimated` says so;
    streams with neither (raw H.264) have their packets counted.
    `width` and `height` are the displayed size, i.e. after the rotation stored with the video, and
    `rotation` is that rotation in degrees counter-clockwise (0, 90, 180 or 270).
    """

    container: str
    codec: str
    duration_s: float
    fps: float
    frame_count: int
    width: int
    height: int
    rotation: int
    frame_count_estimated: bool


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    name = os.fspath(path)
    try:
        return av.open(name, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise VideoError(
            f"'{os.path.basename(name)}' could not be opened as a video ({reason}); "
            "upload a video file such as MP4, WebM or MKV."
        ) from exc


def video_stream(
    container: av.container.InputContainer, name: str, thread_type: str = "AUTO"
) -> av.video.stream.VideoStream:
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise VideoError(f"'{name}' is a still image, not a video; upload it as an image instead.")
    if not container.streams.video:
        raise VideoError(f"'{name}' has no video track; upload a file that contains video.")
    stream = container.streams.video[0]
    stream.thread_type = thread_type
    return stream


def frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def timing(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, frame_count: int, name: str
) -> tuple[float, Fraction]:
    """Duration and frame rate, each derived from the other and the frame count when the file lacks it."""
    rate = frame_rate(stream)
    duration = duration_s(container, stream)
    if rate is None:
        if duration is None:
            raise VideoError(f"'{name}' has neither a frame rate nor a duration; re-encode it as MP4.")
        rate = Fraction(frame_count) / Fraction(duration)
    if duration is None:
        duration = float(frame_count / rate)
    return duration, rate


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata and decode its first frame, so an unplayable upload is rejected up front."""
    name = os.path.basename(os.fspath(path))
    with open_video(path) as container:
        stream = video_stream(container, name)
        container_name, codec = container.format.name, stream.codec_context.name
        rate = frame_rate(stream)
        duration = duration_s(container, stream)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise VideoError(
                f"'{name}' has a video track that cannot be decoded; re-encode it as MP4."
            ) from exc
        if first is None:
            raise VideoError(f"'{name}' contains no video frames; upload a video that plays.")
        estimated = not stream.frames and duration is not None and rate is not None
        if stream.frames:
            frame_count = stream.frames
        elif estimated:
            frame_count = max(1, round(duration * rate))
        else:
            with open_video(path) as counting:
                frame_count = scan(counting, video_stream(counting, name)).count
        duration, rate = timing(container, stream, frame_count, name)
    rotation = first.rotation % 360
    width, height = (first.height, first.width) if rotation % 180 == 90 else (first.width, first.height)
    return VideoInfo(
        container=container_name,
        codec=codec,
        duration_s=duration,
        fps=float(rate),
        frame_count=frame_count,
        width=width,
        height=height,
        rotation=rotation,
        frame_count_estimated=estimated,
    )


@dataclass(frozen=True)
class FrameTable:
    """Every frame's presentation timestamp in display order, and the keyframes', read from the packets.

    `pts` is None when packets carry no timestamps (raw elementary streams) or repeat one: then frames are
    only reachable by decoding from the start.
    """

    count: int
    pts: list[int] | None
    keyframe_pts: list[int]

    def keyframe_before(self, index: int) -> int:
        """Display position of the last keyframe at or before frame `index` (the first keyframe if none)."""
        assert self.pts is not None
        slot = max(0, bisect.bisect_right(self.keyframe_pts, self.pts[index]) - 1)
        return bisect.bisect_left(self.pts, self.keyframe_pts[slot])


def scan(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> FrameTable:
    """Demux (without decoding) the whole video track: cheap, and exact where header frame counts are not."""
    pts: list[int] = []
    keys: list[int] = []
    count = 0
    timed = True
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue
        count += 1
        if packet.pts is None:
            timed = False
            continue
        pts.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
    pts.sort()
    keys.sort()
    seekable = timed and bool(keys) and len(set(pts)) == len(pts)
    return FrameTable(count=count, pts=pts if seekable else None, keyframe_pts=keys)
