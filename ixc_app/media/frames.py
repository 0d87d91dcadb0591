"""Reading videos with PyAV: probing an upload, and decoding the sampled frames into the labelled composite.

The reference decodes every sampled frame through decord; here only the frames that are kept are decoded, by
seeking to the keyframe before each one (several decoders in parallel), and only they are converted to RGB.
One deliberate difference: frames are turned the way the video's rotation metadata says they are displayed
(phone videos), where decord returns them as stored. Which frames, and how they are laid out, are the IXC
facts of `ixc_app.ixc.video`.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
from PIL import Image

from ixc_app.ixc.parallel import usable_cpus
from ixc_app.ixc.video import DEFAULT_MAX_FRAMES, fit_frame, layout_frames, sample_indices

_SEEK_THREAD_TYPE = "SLICE"  # no frame threads after seeks: they delay output and decode frames then dropped
_MAX_DECODERS = 4


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


@dataclass(frozen=True)
class VideoCompositeInfo:
    """What went into a composite. `frame_count` is counted from the video's packets, not estimated;
    `indices` are the sampled frame numbers and `timestamps_s` their presentation times from the first frame;
    `width` x `height` is the displayed frame size. `decoding` is "seek" (keyframe seeks) or "sequential"
    (every frame from the start: no usable timestamps, or seeking misbehaved), and `frames_decoded` how many
    frames the decoder produced to get the sampled ones.
    """

    duration_s: float
    fps: float
    frame_count: int
    width: int
    height: int
    indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    decoding: str
    frames_decoded: int


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    name = os.fspath(path)
    try:
        return av.open(name, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise VideoError(
            f"'{os.path.basename(name)}' could not be opened as a video ({reason}); "
            "upload a video file such as MP4, WebM or MKV."
        ) from exc


def _video_stream(
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


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _timing(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, frame_count: int, name: str
) -> tuple[float, Fraction]:
    """Duration and frame rate, each derived from the other and the frame count when the file lacks it."""
    rate = _frame_rate(stream)
    duration = _duration_s(container, stream)
    if rate is None:
        if duration is None:
            raise VideoError(f"'{name}' has neither a frame rate nor a duration; re-encode it as MP4.")
        rate = Fraction(frame_count) / Fraction(duration)
    if duration is None:
        duration = float(frame_count / rate)
    return duration, rate


def _displayed(frame: av.VideoFrame) -> Image.Image:
    """The frame as RGB, turned the way the video's display matrix says it is shown."""
    image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    rotation = frame.rotation % 360
    return image.transpose(turn[rotation]) if rotation in turn else image


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata and decode its first frame, so an unplayable upload is rejected up front."""
    name = os.path.basename(os.fspath(path))
    with _open(path) as container:
        stream = _video_stream(container, name)
        container_name, codec = container.format.name, stream.codec_context.name
        rate = _frame_rate(stream)
        duration = _duration_s(container, stream)
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
            with _open(path) as counting:
                frame_count = _scan(counting, _video_stream(counting, name)).count
        duration, rate = _timing(container, stream, frame_count, name)
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
class _FrameTable:
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


def _scan(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> _FrameTable:
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
    return _FrameTable(count=count, pts=pts if seekable else None, keyframe_pts=keys)


class _SeekUnreliable(Exception):
    """Seeking did not land on the frames the packet table promised; decode from the start instead."""


@dataclass(frozen=True)
class _Kept:
    """A sampled frame, already resized for the composite, with its displayed size before that."""

    image: Image.Image
    size: tuple[int, int]
    time_s: float


@dataclass(frozen=True)
class _Decoded:
    kept: list[_Kept]
    decoded: int


def _keep(frame: av.VideoFrame, time_s: float) -> _Kept:
    image = _displayed(frame)
    return _Kept(image=fit_frame(image), size=image.size, time_s=time_s)


def _chains(table: _FrameTable, indices: Sequence[int]) -> list[tuple[list[int], int]]:
    """Group the wanted frames into chains that one keyframe seek serves: the next frame joins the chain when
    its keyframe is already behind the previous one, since decoding on is then cheaper than seeking. Each
    chain comes with the number of frames it decodes."""
    chains: list[tuple[list[int], int]] = []
    previous: int | None = None
    for index in indices:
        key = table.keyframe_before(index)
        if previous is not None and key <= previous < index:
            run, cost = chains[-1]
            chains[-1] = ([*run, index], cost + index - previous)
        else:
            chains.append(([index], index - key + 1))
        previous = index
    return chains


def _decode_forward(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, wanted_pts: set[int]
) -> Iterator[av.VideoFrame]:
    """Decode from the current position, letting the decoder skip non-reference frames that are not wanted:
    no other frame depends on them, and with B-frames they are about half of all frames."""
    context = stream.codec_context
    for packet in container.demux(stream):
        context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted_pts else "NONREF"
        yield from context.decode(packet)


def _decode_chains(
    path: str | os.PathLike, table: _FrameTable, chains: Sequence[list[int]], threads: str
) -> _Decoded:
    """Seek to each chain's keyframe and decode forward through its frames, keeping only the wanted ones."""
    assert table.pts is not None
    kept: list[_Kept] = []
    decoded = 0
    with _open(path) as container:
        stream = _video_stream(container, os.path.basename(os.fspath(path)), threads)
        for chain in chains:
            container.seek(table.pts[table.keyframe_before(chain[0])], stream=stream)
            frames = _decode_forward(container, stream, {table.pts[index] for index in chain})
            for index in chain:
                target = table.pts[index]
                for frame in frames:
                    decoded += 1
                    if frame.pts is None or frame.pts > target:
                        raise _SeekUnreliable
                    if frame.pts == target:
                        kept.append(_keep(frame, float((target - table.pts[0]) * stream.time_base)))
                        break
                else:
                    raise _SeekUnreliable
    return _Decoded(kept, decoded)


def _decode_by_seeking(path: str | os.PathLike, table: _FrameTable, indices: Sequence[int]) -> _Decoded:
    """Deal the chains out, in order, to one decoder per core with about equal frames to decode each.

    Separate decoders use the cores better than one decoder's frame threads, which delay every frame by
    the thread count and so decode frames past each target that the next seek throws away. A single chain
    (one long GOP) gets one decoder with frame threads, which is what they are good at.
    """
    chains = _chains(table, indices)
    workers = max(1, min(usable_cpus(), _MAX_DECODERS, len(chains)))
    if workers == 1:
        return _decode_chains(path, table, [run for run, _ in chains], "AUTO")
    share = sum(cost for _, cost in chains) / workers
    groups: list[list[list[int]]] = [[]]
    done = 0
    for run, cost in chains:
        if groups[-1] and done >= share * len(groups) and len(groups) < workers:
            groups.append([])
        groups[-1].append(run)
        done += cost
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        parts = list(pool.map(lambda group: _decode_chains(path, table, group, _SEEK_THREAD_TYPE), groups))
    return _Decoded([k for part in parts for k in part.kept], sum(part.decoded for part in parts))


def _decode_sequentially(path: str | os.PathLike, indices: Sequence[int], fps: Fraction) -> _Decoded:
    """Decode every frame in order, counting them. Wanted frames beyond the real end (a frame count taken
    from packets that did not all decode) repeat the last frame decoded."""
    name = os.path.basename(os.fspath(path))
    wanted = set(indices)
    by_index: dict[int, _Kept] = {}
    decoded = 0
    previous: av.VideoFrame | None = None
    origin: int | None = None
    with _open(path) as container:
        stream = _video_stream(container, name)
        for frame in container.decode(stream):
            position = decoded
            decoded += 1
            if origin is None:
                origin = frame.pts
            if position in wanted:
                by_index[position] = _keep(frame, _time_s(frame, origin, position, stream.time_base, fps))
            previous = frame
            if position >= indices[-1]:
                break
        if previous is None:
            raise VideoError(f"'{name}' contains no decodable video frames; upload a video that plays.")
        if len(by_index) < len(wanted):
            filler = _keep(previous, _time_s(previous, origin, decoded - 1, stream.time_base, fps))
            return _Decoded([by_index.get(index, filler) for index in indices], decoded)
    return _Decoded([by_index[index] for index in indices], decoded)


def _time_s(
    frame: av.VideoFrame, origin: int | None, position: int, time_base: Fraction, fps: Fraction
) -> float:
    if frame.pts is None or origin is None:
        return float(position / fps)
    return float((frame.pts - origin) * time_base)


def video_composite(
    path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES
) -> tuple[Image.Image, VideoCompositeInfo]:
    """The labelled frame composite of a video, before `video_transform`, and what went into it."""
    name = os.path.basename(os.fspath(path))
    try:
        with _open(path) as container:
            stream = _video_stream(container, name)
            table = _scan(container, stream)
            if table.count == 0:
                raise VideoError(f"'{name}' contains no video frames; upload a video that plays.")
            duration, rate = _timing(container, stream, table.count, name)
            indices = sample_indices(table.count, float(rate), max_frames)
            decoding = "seek"
        try:
            if table.pts is None:
                raise _SeekUnreliable
            result = _decode_by_seeking(path, table, indices)
        except (_SeekUnreliable, av.FFmpegError):
            decoding = "sequential"
            result = _decode_sequentially(path, indices, rate)
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise VideoError(
            f"'{name}' is damaged and could not be decoded ({reason}); re-encode it as MP4."
        ) from exc
    kept = result.kept
    composite = layout_frames([k.image for k in kept])
    info = VideoCompositeInfo(
        duration_s=duration,
        fps=float(rate),
        frame_count=table.count,
        width=kept[-1].size[0],
        height=kept[-1].size[1],
        indices=tuple(indices),
        timestamps_s=tuple(k.time_s for k in kept),
        decoding=decoding,
        frames_decoded=result.decoded,
    )
    return composite, info
