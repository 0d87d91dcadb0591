"""Reading a message's files with real progress, and Stop while they are read: a video reports each sampled
frame as it is decoded, a progress callback that raises stops the decoding at the next frame, and a stopped
or refused message leaves nothing of its files stored (content stored before stays)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
import pytest
from app_harness import HeldFrame
from test_answers import OWNER, handlers, wait_for  # noqa: F401 (the fixture)
from test_data_dir import files_under, noise_png, service  # noqa: F401 (the fixture)
from test_media_frames import write_clip

from ixc_app.chat import MediaItem
from ixc_app.chat.service import ChatService, FileProgress
from ixc_app.media import NotMedia, frames, video_composite
from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.sending import Reading, StoppedByUser
from ixc_app.ui.settings_form import form_values


class Stop(Exception):
    """What a test's progress callback raises to stop the reading, as the UI's Stop does."""


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s at 3 fps with one keyframe: 32 sampled frames, decoded by one decoder from the start."""
    folder = tmp_path_factory.mktemp("clips")
    return write_clip(folder / "long.mp4", frames=120, fps=3, size=(96, 64), gop=250)


@pytest.fixture(scope="module")
def many_keyframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyframe every 4 frames: each sampled frame is a seek of its own, shared out to several decoders."""
    return write_clip(tmp_path_factory.mktemp("clips") / "seeks.mp4", frames=96, fps=3, size=(96, 64), gop=4)


@pytest.mark.parametrize("clip", ["long_clip", "many_keyframes"])
def test_each_sampled_frame_is_reported_as_it_is_decoded(clip: str, request: pytest.FixtureRequest) -> None:
    reports: list[tuple[int, int]] = []
    _, info = video_composite(request.getfixturevalue(clip), on_frame=lambda k, n: reports.append((k, n)))
    n = len(info.indices)
    assert n == 32
    assert reports == [(k, n) for k in range(1, n + 1)]


def test_a_progress_callback_that_raises_stops_the_decoding_at_once(
    long_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept: list[object] = []
    keep = frames._keep
    monkeypatch.setattr(frames, "_keep", lambda *args: kept.append(args) or keep(*args))
    calls: list[int] = []

    def stop_at_third(done: int, total: int) -> None:
        calls.append(done)
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        video_composite(long_clip, on_frame=stop_at_third)
    assert calls == [1, 2, 3]
    assert len(kept) == 3


def test_several_decoders_all_stop_when_the_callback_raises(many_keyframes: Path) -> None:
    calls: list[int] = []

    def stop_at_fifth(done: int, total: int) -> None:
        calls.append(done)
        if done == 5:
            raise Stop

    with pytest.raises(Stop):
        video_composite(many_keyframes, on_frame=stop_at_fifth)
    assert calls == [1, 2, 3, 4, 5]


def test_the_ingest_reports_its_steps_and_every_frame_in_order(
    service: ChatService,  # noqa: F811
    long_clip: Path,
) -> None:
    reports: list[tuple[int, float, str]] = []
    service.ingest([str(long_clip)], lambda i, fraction, step: reports.append((i, fraction, step)))
    steps = [step for _, _, step in reports]
    assert steps[:2] == ["checking", "finding the frames"]
    assert steps[2:34] == [f"decoding frame {k}/32" for k in range(1, 33)]
    assert steps[34:] == ["building the frame strip", "ready"]
    fractions = [fraction for _, fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_stopped_ingest_keeps_nothing_of_the_message(
    tmp_path: Path,
    service: ChatService,  # noqa: F811
    long_clip: Path,
) -> None:
    photo = noise_png(tmp_path / "photo.png", 1)
    decoded: list[str] = []

    def stop_at_frame_3(index: int, fraction: float, step: str) -> None:
        if step.startswith("decoding"):
            decoded.append(step)
        if step == "decoding frame 3/32":
            raise Stop

    with pytest.raises(Stop):
        service.ingest([str(photo), str(long_clip)], stop_at_frame_3)
    assert decoded == ["decoding frame 1/32", "decoding frame 2/32", "decoding frame 3/32"]
    assert files_under(service.settings.media_dir) == []
    assert service.store.media.entries() == []


def test_a_stopped_ingest_keeps_content_that_was_stored_before(
    tmp_path: Path,
    service: ChatService,  # noqa: F811
) -> None:
    (stored,) = service.ingest([str(noise_png(tmp_path / "photo.png", 2))])
    before = files_under(service.settings.media_dir)
    new = noise_png(tmp_path / "new.png", 3)

    def stop_at_the_end(index: int, fraction: float, step: str) -> None:
        if step == "ready" and index == 1:
            raise Stop

    with pytest.raises(Stop):
        service.ingest([str(tmp_path / "photo.png"), str(new)], stop_at_the_end)
    assert files_under(service.settings.media_dir) == before
    assert service.store.media.get(stored.key) is not None


def test_a_refused_file_takes_back_the_files_stored_before_it(
    tmp_path: Path,
    service: ChatService,  # noqa: F811
) -> None:
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"not an image at all" * 10)
    with pytest.raises(NotMedia):
        service.ingest([str(noise_png(tmp_path / "photo.png", 4)), str(notes)])
    assert files_under(service.settings.media_dir) == []


def test_a_reading_stopped_midway_raises_stopped_and_removes_the_raw_uploads(
    tmp_path: Path,
    service: ChatService,  # noqa: F811
    long_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = tmp_path / "uploads" / "abc" / "long.mp4"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(long_clip.read_bytes())
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    started = threading.Event()
    reading: list[Reading] = []

    def ingest_stopped_at_frame_3(files: Sequence[str], progress: FileProgress) -> tuple[MediaItem, ...]:
        """The real ingest, with the user pressing Stop as frame 3 is reported."""

        def report(index: int, fraction: float, step: str) -> None:
            if step == "decoding frame 3/32":
                reading[0].stop()
            progress(index, fraction, step)

        started.wait()
        return service.ingest(files, report)

    reading.append(Reading(ingest_stopped_at_frame_3, [str(raw)]))
    started.set()
    with pytest.raises(StoppedByUser):
        reading[0].result()
    assert reading[0].states[0].step == "decoding frame 2/32"
    assert not raw.exists()
    assert files_under(service.settings.media_dir) == []


class Tab:
    """What the handlers read of a Gradio request: the tab's session hash, and no login."""

    session_hash = "tab-1"
    username = None


def reading_event(chat: ChatHandlers, clip: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The ingest event of a page sending `clip` as an upload, held at its second frame; returns the event,
    the raw upload and the fake."""
    raw = folder / "uploads" / "abc" / clip.name
    raw.parent.mkdir(parents=True)
    raw.write_bytes(clip.read_bytes())
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder / "uploads"))
    held = HeldFrame(chat.service.ingest, hold=2)
    monkeypatch.setattr(chat.service, "ingest", held)
    message = {"text": "What is this?", "files": [str(raw)]}
    stored = {"owner": OWNER, "conversation": ""}
    event = chat.ingest(message, stored, Tab(), *form_values(chat.service.default_settings()))
    return event, raw, held


def test_leaving_the_conversation_while_a_video_is_read_stops_it_and_keeps_nothing(
    handlers: tuple[ChatHandlers, object],  # noqa: F811
    long_clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat, _ = handlers
    event, raw, held = reading_event(chat, long_clip, tmp_path, monkeypatch)
    next(event)
    held.held.wait()
    event.close()  # what Gradio does to the event when the page leaves the conversation (its `cancels`)
    wait_for(lambda: not raw.exists())
    assert files_under(chat.service.settings.media_dir) == []
    assert chat.service.conversations(OWNER) == []


def test_stop_while_a_video_is_read_puts_the_chat_and_the_text_back(
    handlers: tuple[ChatHandlers, object],  # noqa: F811
    long_clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat, _ = handlers
    event, raw, held = reading_event(chat, long_clip, tmp_path, monkeypatch)
    textbox, chatbot, _ = next(event)
    assert chatbot.value[-1]["content"][-1] == {"type": "text", "text": "What is this?"}
    held.held.wait()
    chat.stop_reading(Tab())
    outputs = []
    with pytest.raises(gr.Error):
        outputs.extend(event)
    textbox, chatbot, _ = outputs[-1]
    assert textbox.value["text"] == "What is this?" and textbox.interactive
    assert chatbot.value == []
    assert not raw.exists()
    assert files_under(chat.service.settings.media_dir) == []
    assert chat.service.conversations(OWNER) == []


def test_a_video_read_while_the_tab_opens_another_conversation_draws_nothing_and_keeps_nothing(
    handlers: tuple[ChatHandlers, object],  # noqa: F811
    long_clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gradio's cancel arrives after the other conversation is shown: the reading's next step sees the tab
    moved on (`ui.tabs`) and ends without drawing its chat or composer over it."""
    chat, _ = handlers
    event, raw, held = reading_event(chat, long_clip, tmp_path, monkeypatch)
    next(event)
    held.held.wait()
    chat.shown.show(Tab(), "another-conversation")
    outputs: list = []
    with pytest.raises(gr.Error):
        outputs.extend(event)
    assert outputs == []
    wait_for(lambda: not raw.exists())
    assert files_under(chat.service.settings.media_dir) == []
    assert chat.service.conversations(OWNER) == []
