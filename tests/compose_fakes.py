"""A scripted fake engine for the composer's use-case tests (tests only; the real engine runs the same paths
in test_compose_api.py and test_compose_browser.py). Not a test module."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from app_harness import RunningApp, app_settings, start_app, write_png

from ixc_app.chat.runner import EngineRunner
from ixc_app.compose.article_store import ArticleStore
from ixc_app.compose.library import Library
from ixc_app.compose.service import ComposeService
from ixc_app.config import Limits, Settings
from ixc_app.engines.base import Delta, EngineCapabilities, Finished, Request, StreamItem
from ixc_app.ixc.compose import CAPTION_PREFILL, SELECTION_PREFILL, SLOT_PREFILL
from ixc_app.media import MediaStore

DRAFT = "西湖在杭州。\n\n春天的苏堤很美。\n断桥残雪。\n雷峰塔的传说。\n湖边的茶馆。\n夜晚的音乐喷泉。"
Answer = Callable[[Request], str]


def scripted_answer(request: Request) -> str:
    """Answers by step, recognised from the prefill: outline and draft text, slots, captions, letters."""
    if request.prefill == SLOT_PREFILL:
        return "<Seg1><Seg3><Seg5>"
    if request.prefill == CAPTION_PREFILL:
        return '湖边的雷峰塔"'
    if request.prefill == SELECTION_PREFILL:
        return "B"
    if "大纲" in request.turns[-1].text and "根据下面的题目" not in request.turns[-1].text:
        return "一、春\n二、夏"
    return DRAFT


class ScriptedComposeFakeEngine:
    """Streams the scripted answer a few characters per step (every `step_s`), records every request."""

    def __init__(self, answer: Answer = scripted_answer, step_s: float = 0.0, **capabilities: object) -> None:
        base = EngineCapabilities(name="compose-fake", modes=frozenset({"base", "write"}))
        self.capabilities = replace(base, **capabilities)
        self.tokenizer = _CharTokenizer()
        self.answer = answer
        self.step_s = step_s
        self.requests: list[Request] = []
        self.steps = 0
        self.lock = threading.Lock()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        with self.lock:
            self.requests.append(request)
        text = self.answer(request)
        for start in range(0, len(text), 3):
            if cancel is not None and cancel.is_set():
                yield Finished("cancelled", 10, start)
                return
            if self.step_s:
                time.sleep(self.step_s)
            self.steps += 1
            yield Delta(text[start : start + 3])
        yield Finished("stop", 10, len(text), cached_tokens=4)

    def close(self) -> None:
        pass


class _CharTokenizer:
    """One token per character: enough for the template's token counts."""

    stop_ids = (2,)

    def encode(self, text: str, bos: bool = False) -> list[int]:
        return ([1] if bos else []) + [ord(c) % 1000 + 3 for c in text]

    def decode(self, ids: list[int]) -> str:
        return ""


def compose_service(
    root: Path, engine: object, folders: tuple[Path, ...] = (), **limits: int
) -> ComposeService:
    settings = Settings(data_dir=root, limits=replace(Limits(), **limits), hd_num_single=1, hd_num_multi=1)
    media = MediaStore(settings.media_dir)
    store = ArticleStore(settings.compose_dir, media)
    library = Library(store, media, folders, settings.limits)
    return ComposeService(settings, EngineRunner(engine), store, library)  # type: ignore[arg-type]


def image_folder(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_png(folder / f"picture-{i}.png", (20 * i % 255, 120, 200 - 15 * i)) for i in range(count)]


def start_composer(data_dir: Path, library_dir: Path, engine: object, images: int = 8) -> RunningApp:
    """The real app on `engine` with a library folder of generated images, scanned before it is used."""
    image_folder(library_dir, images)
    running = start_app(replace(app_settings(data_dir), library_dirs=(library_dir,)), engine)  # type: ignore[arg-type]
    running.services.compose.library.scan_folders()
    return running
