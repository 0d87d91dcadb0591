"""Time a 60 s 1920x1080 30 fps H.264 clip turned into the model's video strip.

Ours: `video_composite` (keyframe seeks, threaded decoding, RGB only for kept frames) + `video_transform`.
Reference-style: decode every frame in order on one thread, convert the sampled ones, same composite code.
The clips are generated once with PyAV and cached under /tmp; the machine is shared, so min and median are
printed. Run: .venv/bin/python benchmarks/bench_video.py [--runs N] [--gops 30,60,250]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageChops

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ixc_app.ixc.grid import CROP, image_token_count
from ixc_app.ixc.video import frame_composite, sample_indices, video_transform
from ixc_app.media import video_composite

WIDTH, HEIGHT, FPS, SECONDS = 1920, 1080, 30, 60
CACHE = Path("/tmp/ixc_bench_video")


def clip(gop: int) -> Path:
    """A 60 s clip whose content moves every frame (scrolling gradient, a moving box, a drifting texture), so
    inter frames carry real data. libx264 preset veryfast (3 B-frames), CRF 23, a keyframe exactly every
    `gop` frames (scene-cut keyframes off)."""
    path = CACHE / f"clip_{WIDTH}x{HEIGHT}_{FPS}fps_{SECONDS}s_gop{gop}.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    texture = ((np.sin(xs / 7.0) * np.cos(ys / 5.0) + 1) * 40).astype(np.int16)
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "veryfast", "keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(FPS * SECONDS):
            frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            frame[..., 0] = (xs + 4 * i) % 256
            frame[..., 1] = (ys + 2 * i) % 256
            frame[..., 2] = np.clip(np.roll(texture, 3 * i, axis=1) + 60, 0, 255)
            bx, by = (37 * i) % (WIDTH - 300), (23 * i) % (HEIGHT - 200)
            frame[by : by + 200, bx : bx + 300] = (255 - (i % 256), i % 256, 128)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
    return path


def reference_style(path: Path) -> Image.Image:
    """Every frame decoded in order on one thread; the sampled ones converted; the same composite code."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        wanted = set(sample_indices(stream.frames, float(stream.average_rate)))
        frames = [f.to_image() for i, f in enumerate(container.decode(stream)) if i in wanted]
    return video_transform(frame_composite(frames))


def ours(path: Path) -> Image.Image:
    composite, _ = video_composite(path)
    return video_transform(composite)


def timed(fn, path: Path, runs: int) -> tuple[list[float], list[float], Image.Image]:
    """Wall-clock and CPU seconds (all threads of this process) per run; CPU time is the steadier figure
    on a shared machine."""
    wall, cpu = [], []
    result = None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn(path)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, result


def figures(label: str, wall: list[float], cpu: list[float]) -> str:
    return (
        f"  {label:<16} wall min {min(wall):.3f} s  median {statistics.median(wall):.3f} s | "
        f"CPU min {min(cpu):.3f} s  median {statistics.median(cpu):.3f} s  ({len(wall)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reference-runs", type=int, default=2)
    parser.add_argument("--gops", default="30,60,250", help="keyframe intervals in frames, comma separated")
    args = parser.parse_args()
    for gop in (int(g) for g in args.gops.split(",")):
        path = clip(gop)
        _, info = video_composite(path)
        ours_wall, ours_cpu, ours_img = timed(ours, path, args.runs)
        ref_wall, ref_cpu, ref_img = timed(reference_style, path, args.reference_runs)
        same = ours_img.size == ref_img.size and ImageChops.difference(ours_img, ref_img).getbbox() is None
        rows, cols = ours_img.height // CROP, ours_img.width // CROP
        print(
            f"GOP {gop} frames ({gop / FPS:.1f} s), {path.stat().st_size / 1e6:.0f} MB, "
            f"{info.frame_count} frames, {len(info.indices)} sampled, decoding={info.decoding}, "
            f"frames decoded={info.frames_decoded}"
        )
        print(figures("ours:", ours_wall, ours_cpu))
        print(figures("reference-style:", ref_wall, ref_cpu))
        print(
            f"  output {ours_img.width}x{ours_img.height} ({image_token_count(rows, cols)} tokens), "
            f"reference-style {ref_img.width}x{ref_img.height}, identical pixels: {same}"
        )


if __name__ == "__main__":
    main()
