"""Start the real app in-process on the tiny checkpoint, for the API, bad-input and browser tests.

Not a test module: the test files import it (pytest puts `tests/` on the path). Each app gets its own data
dir, a free port and a fresh `Store` (all share one upload folder, see `UPLOADS`); restarting on the same data
dir is how the tests check that conversations survive a server restart.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client import Client

from ixc_app.bootstrap import Services, build_services
from ixc_app.chat import MediaItem
from ixc_app.chat.service import FileProgress
from ixc_app.config import LOGIN_SECRET_FILE_NAME, Limits, Settings, load_or_create_secret
from ixc_app.engines.base import Engine
from ixc_app.store import Store
from ixc_app.ui import build_app, launch

# One upload folder for every app a test session starts: Gradio reads it from the environment at request
# time, so apps with folders of their own would see each other's uploads as foreign.
UPLOADS = tempfile.mkdtemp(prefix="ixc-test-uploads-")
atexit.register(shutil.rmtree, UPLOADS, ignore_errors=True)
os.environ.setdefault("GRADIO_TEMP_DIR", UPLOADS)

FAST = {"max_new_tokens": 6}
"""Generation settings that keep a tiny-checkpoint answer short."""
TINY_HD_NUM = 1
"""Crop budget for the tests: the tiny checkpoint's context (4096 tokens) holds a few images at this size."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_settings(data_dir: Path, *, hd_num: int = TINY_HD_NUM, **limits: Any) -> Settings:
    """Settings as `config.prepare` would leave them for the demo checkpoint (the engine is built apart)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        model="tiny",
        host="127.0.0.1",
        port=free_port(),
        data_dir=data_dir,
        secret=load_or_create_secret(data_dir),
        login_secret=load_or_create_secret(data_dir, LOGIN_SECRET_FILE_NAME),
        limits=replace(Limits(), **limits),
        hd_num_single=hd_num,
        hd_num_multi=hd_num,
        device="cpu",
        dtype="fp32",
    )


@dataclass
class RunningApp:
    services: Services
    demo: gr.Blocks
    url: str

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def store(self) -> Store:
        return self.services.store

    def client(self) -> Client:
        return Client(self.url, verbose=False, download_files=False)

    def close(self) -> None:
        """Stops serving and closes the store; the engine belongs to the test that made it."""
        self.demo.close()
        self.services.compose.store.close()
        self.services.chat.preferences.close()
        self.store.close()


def start_app(settings: Settings, engine: Engine) -> RunningApp:
    services = build_services(settings, engine)
    demo = build_app(services)
    _, url, _ = launch(demo, settings, prevent_thread_lock=True)
    return RunningApp(services, demo, url)


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse([8, 8, size[0] // 2, size[1] - 8], fill=(255 - color[0], 200, 40))
    image.save(path)
    return path


def write_mp4(path: Path, seconds: int = 2, fps: int = 4, size: tuple[int, int] = (96, 64)) -> Path:
    """A short H.264 clip of a square moving across the frame."""
    import av
    from PIL import Image, ImageDraw

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(seconds * fps):
            image = Image.new("RGB", size, (20, 30, 60))
            x = 4 + i * (size[0] - 24) // (seconds * fps)
            ImageDraw.Draw(image).rectangle([x, 20, x + 16, 36], fill=(240, 200, 40))
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())
    return path


class HeldFrame:
    """A test fake around the app's real `ChatService.ingest`: when frame `hold` of a video has been decoded,
    the reading stays there (`held` is set), reporting that frame again every 50 ms (so a Stop is noticed as
    at any frame), until `release` is set. Everything else, decoding included, is the real path."""

    def __init__(self, ingest: Any, hold: int) -> None:
        self.ingest = ingest
        self.hold = hold
        self.release = threading.Event()
        self.held = threading.Event()

    def __call__(self, files: Sequence[str], progress: FileProgress) -> tuple[MediaItem, ...]:
        def report(index: int, fraction: float, step: str) -> None:
            progress(index, fraction, step)
            if step.startswith(f"decoding frame {self.hold}/"):
                self.held.set()
                while not self.release.wait(0.05):
                    progress(index, fraction, step)

        return self.ingest(files, report)
