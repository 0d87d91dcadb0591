"""Bad input through the `/chat` API: each is refused with its one sentence and the app serves on.

Each refusal is sent into a conversation that already has a turn, which must come out of it unchanged and
still continue. The app runs with small limits so that the files that break them stay small.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import FAST, RunningApp, app_settings, start_app, write_mp4, write_png
from conftest import native_engine
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from ixc_app.ui.identity import parse_handle

LIMITS = {
    "max_files_per_message": 3,
    "max_files_per_conversation": 4,
    "max_text_chars": 400,
    "max_video_seconds": 1.5,
    "max_image_pixels": 400 * 300,
    "max_upload_bytes": 1024 * 1024,
    "context_budget": 1200,
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[RunningApp]:
    engine = native_engine(tiny_checkpoint, is_demo_model=True)
    running = start_app(app_settings(tmp_path_factory.mktemp("app"), **LIMITS), engine)
    yield running
    running.close()
    engine.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


def chat(app: RunningApp, message: str, files: list[Path], conversation: str = "", **settings: Any) -> str:
    """The final answer's conversation id; raises `AppError` with the app's message when refused."""
    job = app.client().submit(
        message, [handle_file(str(f)) for f in files], conversation, api_name="/chat", **{**FAST, **settings}
    )
    return job.result()[1]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = 50_000) -> Path:
    """A few hundred bytes whose header declares a `side` x `side` RGB image."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * 64))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")
    )
    return path


def corrupt_png(path: Path) -> Path:
    """A real PNG whose compressed pixel data has been overwritten with noise."""
    write_png(path, (10, 120, 60), size=(120, 90))
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = bytes(range(7, 47))
    path.write_bytes(bytes(data))
    return path


def messages(app: RunningApp, handle: str) -> list[tuple[str, str]]:
    conv = app.store.get(*parse_handle(handle))
    assert conv is not None
    return [(m.role, m.text) for m in conv.messages]


def assert_refused(
    app: RunningApp, folder: Path, expected: str, message: str, files: list[Path], **settings: Any
) -> None:
    handle = chat(app, "Hello.", [])
    before = messages(app, handle)
    steps = app.engine.steps_run
    with pytest.raises(AppError) as refused:
        chat(app, message, files, handle, **settings)
    assert expected in str(refused.value)
    assert messages(app, handle) == before, "a refused message must leave the conversation as it was"
    assert app.engine.steps_run == steps, "a refused message must be refused before the engine runs"
    chat(app, "Still there?", [write_png(folder / "fine.png", (90, 90, 200))], handle)
    assert [role for role, _ in messages(app, handle)] == ["user", "assistant"] * 2


def test_corrupt_image(app: RunningApp, folder: Path) -> None:
    assert_refused(
        app, folder, "is a damaged PNG image", "What is this?", [corrupt_png(folder / "photo.png")]
    )


def test_text_file_renamed_to_png(app: RunningApp, folder: Path) -> None:
    fake = folder / "holiday.png"
    fake.write_text("Dear diary, today I renamed a text file.\n" * 20)
    assert_refused(app, folder, "'holiday.png' is not an image or a video", "Look!", [fake])


def test_empty_video(app: RunningApp, folder: Path) -> None:
    empty = folder / "clip.mp4"
    empty.write_bytes(b"")
    assert_refused(app, folder, "'clip.mp4' is empty (0 bytes)", "Describe the video.", [empty])


def test_png_bomb(app: RunningApp, folder: Path) -> None:
    bomb = png_bomb(folder / "huge.png")
    assert bomb.stat().st_size < 1000
    assert_refused(app, folder, "'huge.png' declares an image too large to open safely", "Zoom in.", [bomb])


def test_image_over_the_pixel_limit(app: RunningApp, folder: Path) -> None:
    big = write_png(folder / "big.png", (200, 200, 20), size=(800, 600))
    assert_refused(app, folder, "'big.png' is 800x600 pixels", "What is this?", [big])


def test_video_over_the_duration_limit(app: RunningApp, folder: Path) -> None:
    long_clip = write_mp4(folder / "long.mp4", seconds=3)
    assert_refused(app, folder, "over the 1.5-second limit", "Describe it.", [long_clip])


def test_too_many_files_in_one_message(app: RunningApp, folder: Path) -> None:
    files = [write_png(folder / f"p{i}.png", (40 * i, 80, 80)) for i in range(4)]
    assert_refused(
        app, folder, "4 files are attached but a message may carry at most 3", "All of them.", files
    )


def test_too_many_files_in_one_conversation(app: RunningApp, folder: Path) -> None:
    handle = ""
    for i in range(3):
        handle = chat(app, f"Picture {i}.", [write_png(folder / f"a{i}.png", (200, 10, 60 * i))], handle)
    more = [write_png(folder / f"b{i}.png", (10, 10, 90 + i)) for i in range(2)]
    with pytest.raises(AppError, match="already holds 3 images and videos and may hold at most 4"):
        chat(app, "Two more.", more, handle)
    conv = app.store.get(*parse_handle(handle))
    assert len(conv.messages) == 6 and len(conv.media) == 3


def test_over_long_text(app: RunningApp, folder: Path) -> None:
    assert_refused(app, folder, "is 401 characters long, over the limit of 400", "x" * 401, [])


def test_message_over_the_context_budget(app: RunningApp, folder: Path) -> None:
    files = [write_png(folder / f"d{i}.png", (60, 60 * i, 60)) for i in range(2)]
    assert_refused(app, folder, "more than the context limit of 1200", "Compare them.", files)


def test_old_turns_are_dropped_to_fit_the_budget_and_the_answer_says_so(
    app: RunningApp, folder: Path
) -> None:
    handle = chat(app, "Here is a picture.", [write_png(folder / "e.png", (250, 120, 0))])
    question = "please describe the colours, the shapes and the mood of the picture once more. " * 2
    for turn in range(4):
        handle = chat(app, f"Follow-up {turn}: {question}", [], handle)
    conv = app.store.get(*parse_handle(handle))
    assert len(conv.messages) == 10, "the conversation keeps every turn; only the request is trimmed"
    assert conv.messages[-1].stats.dropped_messages > 0


def test_out_of_range_temperature(app: RunningApp, folder: Path) -> None:
    assert_refused(app, folder, "Value 9 is greater than maximum value 2", "Hello", [], temperature=9)


def test_fractional_answer_length(app: RunningApp, folder: Path) -> None:
    assert_refused(app, folder, "Max new tokens must be a whole number", "Hello", [], max_new_tokens=2.5)


def test_upload_over_the_size_limit(app: RunningApp, folder: Path) -> None:
    big = folder / "big.mp4"
    big.write_bytes(b"\0" * (LIMITS["max_upload_bytes"] + 1))
    response = httpx.post(f"{app.url}gradio_api/upload", files={"files": ("big.mp4", big.read_bytes())})
    assert response.status_code == 413
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        chat(app, "Too big?", [big])
    assert messages(app, chat(app, "Still there?", []))[-1][0] == "assistant"


def test_typed_image_placeholders_are_plain_text_to_the_app(app: RunningApp, folder: Path) -> None:
    image = write_png(folder / "pic.png", (200, 60, 60))
    handle = chat(app, "What is <ImageHere> here? Image1 <ImageHere><ImageHere>", [image])
    handle = chat(app, "And <ImageHere> now?", [], handle)
    conv = app.store.get(*parse_handle(handle))
    assert conv is not None
    assert [(m.role, m.text) for m in conv.messages[::2]] == [
        ("user", "What is  here? Image1 "),
        ("user", "And  now?"),
    ]
    assert all(m.finish in ("stop", "length") and m.error is None for m in conv.messages[1::2])
