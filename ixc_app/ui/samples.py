"""Sample media for the chat examples, drawn at startup: the app ships no binary assets and downloads nothing.

The pictures are simple on purpose (a bar chart, a landscape, a short clip of a bouncing ball): they exercise
the single-image, multi-image and video paths of the pipeline and give a new user something to click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

SAMPLES_DIR_NAME = "samples"
CHART = "chart.png"
LANDSCAPE = "landscape.png"
CLIP = "bouncing-ball.mp4"


@dataclass(frozen=True)
class SampleMedia:
    chart: Path
    landscape: Path
    clip: Path


def _chart(path: Path) -> None:
    image = Image.new("RGB", (800, 560), (250, 250, 252))
    draw = ImageDraw.Draw(image)
    values = {"Mon": 12, "Tue": 19, "Wed": 7, "Thu": 23, "Fri": 16}
    colors = [(66, 133, 244), (52, 168, 83), (251, 188, 5), (234, 67, 53), (155, 81, 224)]
    draw.text((40, 24), "Visitors per day (thousands)", fill=(30, 30, 40), font_size=30)
    base, top, scale = 500, 90, 16
    draw.line([(70, top), (70, base), (760, base)], fill=(60, 60, 70), width=3)
    for i, ((day, value), color) in enumerate(zip(values.items(), colors, strict=True)):
        x = 110 + i * 130
        draw.rectangle([x, base - value * scale, x + 80, base], fill=color)
        draw.text((x + 22, base + 12), day, fill=(30, 30, 40), font_size=24)
        draw.text((x + 26, base - value * scale - 34), str(value), fill=(30, 30, 40), font_size=24)
    image.save(path)


def _landscape(path: Path) -> None:
    width, height = 960, 640
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - rows) * np.array([70, 130, 220]) + rows * np.array([255, 200, 150])
    image = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([660, 90, 780, 210], fill=(255, 230, 120))
    draw.polygon([(0, 470), (220, 230), (430, 470)], fill=(90, 100, 120))
    draw.polygon([(250, 470), (520, 180), (800, 470)], fill=(70, 80, 100))
    draw.polygon(
        [(520, 180), (464, 240), (492, 230), (516, 248), (548, 230), (578, 240)], fill=(245, 245, 250)
    )
    draw.polygon([(600, 470), (800, 300), (960, 470)], fill=(100, 110, 130))
    draw.rectangle([0, 470, width, height], fill=(60, 120, 170))
    for x in range(40, width, 140):
        draw.line([(x, 520), (x + 60, 520)], fill=(200, 220, 240), width=3)
    image.save(path)


def _clip(path: Path, seconds: int = 4, fps: int = 12) -> None:
    width, height, radius = 320, 240, 22
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            t = i / fps
            x = int(radius + (width - 2 * radius) * (0.5 + 0.5 * math.sin(t * 1.7)))
            y = int(height - radius - 10 - abs(math.sin(t * math.pi)) * 150)
            image = Image.new("RGB", (width, height), (235, 240, 250))
            draw = ImageDraw.Draw(image)
            draw.rectangle([0, height - 10, width, height], fill=(80, 90, 110))
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(230, 70, 60))
            draw.text((10, 8), f"{t:0.1f} s", fill=(40, 40, 60), font_size=18)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def samples_folder(data_dir: Path) -> Path:
    return data_dir / SAMPLES_DIR_NAME


def ensure_samples(folder: Path) -> SampleMedia:
    """Draw the samples once into `folder`; later starts reuse them."""
    folder.mkdir(parents=True, exist_ok=True)
    media = SampleMedia(folder / CHART, folder / LANDSCAPE, folder / CLIP)
    for path, draw in ((media.chart, _chart), (media.landscape, _landscape), (media.clip, _clip)):
        if not path.is_file():
            partial = path.with_name(f".{path.name}.partial{path.suffix}")
            draw(partial)
            partial.replace(path)
    return media
