"""Decoding a video's sampled frames with PyAV into the labelled composite (probing is `media.probe`).

The reference decodes every sampled frame through decord; here only the frames that are kept are decoded, by
seeking to the keyframe before each one (several decoders in parallel), and only they are converted to RGB.
One deliberate difference: frames are turned the way the video's rotation metadata says they are displayed
(phone videos), where decord returns them as stored. Which frames, and how they are laid out, are the IXC
facts of `ixc_app.ixc.video`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
from PIL import Image

from ixc_app.ixc.parallel import usable_cpus
from ixc_app.ixc.video import DEFAULT_MAX_FRAMES, fit_frame, layout_frames, sample_indices
from ixc_app.media.probe import FrameTable, VideoError, open_video, scan, timing, video_stream

FrameProgress = Callable[[int, int], None]
"""`on_frame(done, total)`, called as each sampled frame is decoded. It may raise (a user's Stop): decoding
then stops at the next frame of every decoder and the error reaches the caller of `video_composite`."""

_SEEK_THREAD_TYPE = "SLICE"  # no frame threads after seeks: they delay output and decode frames then dropped
_MAX_DECODERS = 4


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


def _displayed(frame: av.VideoFrame) -> Image.Image:
    """The frame as RGB, turned the way the video's display matrix says it is shown."""
    image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    rotation = frame.rotation % 360
    return image.transpose(turn[rotation]) if rotation in turn else image


class _SeekUnreliable(Exception):
    """Seeking did not land on the frames the packet table promised; decode from the start instead."""


class _Tally:
    """The sampled frames decoded so far, counted across decoder threads for `on_frame`. Once `on_frame`
    has raised, every decoder raises the same error at its next frame, so all of them stop."""

    def __init__(self, total: int, on_frame: FrameProgress | None) -> None:
        self.total = total
        self.on_frame = on_frame
        self.done = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def frame(self) -> None:
        with self._lock:
            if self.error is not None:
                raise self.error
            self.done += 1
            if self.on_frame is not None:
                try:
                    self.on_frame(self.done, self.total)
                except BaseException as exc:
                    self.error = exc
                    raise

    def restart(self) -> None:
        """Decoding starts over (seeking misbehaved): the count does too."""
        with self._lock:
            self.done = 0


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


def _chains(table: FrameTable, indices: Sequence[int]) -> list[tuple[list[int], int]]:
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
    path: str | os.PathLike, table: FrameTable, chains: Sequence[list[int]], threads: str, tally: _Tally
) -> _Decoded:
    """Seek to each chain's keyframe and decode forward through its frames, keeping only the wanted ones."""
    assert table.pts is not None
    kept: list[_Kept] = []
    decoded = 0
    with open_video(path) as container:
        stream = video_stream(container, os.path.basename(os.fspath(path)), threads)
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
                        tally.frame()
                        break
                else:
                    raise _SeekUnreliable
    return _Decoded(kept, decoded)


def _decode_by_seeking(
    path: str | os.PathLike, table: FrameTable, indices: Sequence[int], tally: _Tally
) -> _Decoded:
    """Deal the chains out, in order, to one decoder per core with about equal frames to decode each.

    Separate decoders use the cores better than one decoder's frame threads, which delay every frame by
    the thread count and so decode frames past each target that the next seek throws away. A single chain
    (one long GOP) gets one decoder with frame threads, which is what they are good at.
    """
    chains = _chains(table, indices)
    workers = max(1, min(usable_cpus(), _MAX_DECODERS, len(chains)))
    if workers == 1:
        return _decode_chains(path, table, [run for run, _ in chains], "AUTO", tally)
    share = sum(cost for _, cost in chains) / workers
    groups: list[list[list[int]]] = [[]]
    done = 0
    for run, cost in chains:
        if groups[-1] and done >= share * len(groups) and len(groups) < workers:
            groups.append([])
        groups[-1].append(run)
        done += cost
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        parts = list(
            pool.map(lambda group: _decode_chains(path, table, group, _SEEK_THREAD_TYPE, tally), groups)
        )
    return _Decoded([k for part in parts for k in part.kept], sum(part.decoded for part in parts))


def _decode_sequentially(
    path: str | os.PathLike, indices: Sequence[int], fps: Fraction, tally: _Tally
) -> _Decoded:
    """Decode every frame in order, counting them. Wanted frames beyond the real end (a frame count taken
    from packets that did not all decode) repeat the last frame decoded."""
    name = os.path.basename(os.fspath(path))
    wanted = set(indices)
    by_index: dict[int, _Kept] = {}
    decoded = 0
    previous: av.VideoFrame | None = None
    origin: int | None = None
    with open_video(path) as container:
        stream = video_stream(container, name)
        for frame in container.decode(stream):
            position = decoded
            decoded += 1
            if origin is None:
                origin = frame.pts
            if position in wanted:
                by_index[position] = _keep(frame, _time_s(frame, origin, position, stream.time_base, fps))
                tally.frame()
            previous = frame
            if position >= indices[-1]:
                break
        if previous is None:
            raise VideoError(f"'{name}' contains no decodable video frames; upload a video that plays.")
        if len(by_index) < len(wanted):
            filler = _keep(previous, _time_s(previous, origin, decoded - 1, stream.time_base, fps))
            for _ in range(len(wanted) - len(by_index)):
                tally.frame()
            return _Decoded([by_index.get(index, filler) for index in indices], decoded)
    return _Decoded([by_index[index] for index in indices], decoded)


def _time_s(
    frame: av.VideoFrame, origin: int | None, position: int, time_base: Fraction, fps: Fraction
) -> float:
    if frame.pts is None or origin is None:
        return float(position / fps)
    return float((frame.pts - origin) * time_base)


def video_composite(
    path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES, on_frame: FrameProgress | None = None
) -> tuple[Image.Image, VideoCompositeInfo]:
    """The labelled frame composite of a video, before `video_transform`, and what went into it;
    `on_frame` hears of each sampled frame as it is decoded (and may stop the decoding by raising)."""
    name = os.path.basename(os.fspath(path))
    try:
        with open_video(path) as container:
            stream = video_stream(container, name)
            table = scan(container, stream)
            if table.count == 0:
                raise VideoError(f"'{name}' contains no video frames; upload a video that plays.")
            duration, rate = timing(container, stream, table.count, name)
            indices = sample_indices(table.count, float(rate), max_frames)
            decoding = "seek"
        tally = _Tally(len(indices), on_frame)
        try:
            if table.pts is None:
                raise _SeekUnreliable
            result = _decode_by_seeking(path, table, indices, tally)
        except (_SeekUnreliable, av.FFmpegError):
            decoding = "sequential"
            tally.restart()
            result = _decode_sequentially(path, indices, rate, tally)
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
