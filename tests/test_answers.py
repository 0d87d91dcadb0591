"""Answers that survive: one answer per conversation at a time, answers that outlive the page that asked for
them, and answers that survive a kill -9 as far as they were saved (issue 12, items 13-15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import diskcache
import httpx
import pytest
from app_harness import app_settings, free_port, start_app
from conftest import REPO_ROOT, native_engine
from gradio_client import Client
from gradio_client.exceptions import AppError
from test_chat_service import GatedFakeEngine
from test_ui_api import send, wait_for

from ixc_app.chat import ChatSettings, Conversation, add_user_message, new_conversation
from ixc_app.chat import service as chat_service
from ixc_app.chat.drafts import InputRejected
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.store import Store
from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.follow import AnswerFollower
from ixc_app.ui.identity import Owners, parse_handle
from ixc_app.ui.settings_form import form_values

OWNER = "owner-token-aaaaaaaaaaaa"
LONG = {"max_new_tokens": 3000}
"""A long answer from the tiny checkpoint: long enough to act on while it streams."""


def test_a_second_message_while_one_streams_is_refused_and_the_answer_is_kept(app: object) -> None:
    first, second = app.client(), app.client()  # type: ignore[attr-defined]
    handle = send(first, "Hello.")[-1][1]
    job = first.submit("Write a long essay.", [], handle, api_name="/chat", **LONG)
    wait_for(lambda: any(text for text, _ in job.outputs()))

    with pytest.raises(AppError, match="still answering your previous message"):
        send(second, "And this too?", (), handle)

    job.result()
    received = job.outputs()[-1][0]
    conv = app.store.get(*parse_handle(handle))  # type: ignore[attr-defined]
    assert conv is not None
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.messages[-1].text == received and received
    assert conv.messages[-1].finish in ("stop", "length")


@pytest.fixture
def handlers(tmp_path: Path, real_tokenizer_path: Path) -> Iterator[tuple[ChatHandlers, GatedFakeEngine]]:
    engine = GatedFakeEngine()
    engine.tokenizer = Tokenizer.from_file(real_tokenizer_path)
    settings = app_settings(tmp_path / "data")
    store = Store.from_settings(settings)
    service = ChatService(settings, EngineRunner(engine), store, Preferences(tmp_path / "preferences"))  # type: ignore[arg-type]
    yield ChatHandlers(service, examples=[], owners=Owners(settings.login_secret)), engine
    store.close()


def asked(service: ChatService) -> tuple[Conversation, dict[str, str]]:
    conv = add_user_message(new_conversation(OWNER, ChatSettings()), "Hi there")
    service.store.put(conv)
    return conv, {"owner": OWNER, "conversation": conv.id}


def page_answer(handlers: ChatHandlers, stored: dict[str, str]) -> Iterator[object]:
    """The answer event as a page runs it, advanced to its first text."""
    event = handlers.answer(stored, None, *form_values(handlers.service.default_settings()))
    next(event)
    wait_for(lambda: handlers.service.answering(OWNER, stored["conversation"]) is not None)
    return event


def test_a_reload_does_not_stop_the_answer_and_the_new_page_follows_it(
    handlers: tuple[ChatHandlers, GatedFakeEngine],
) -> None:
    chat, engine = handlers
    conv, stored = asked(chat.service)
    event = page_answer(chat, stored)
    event.close()  # what Gradio does when the page reloads or the connection drops

    reloaded = AnswerFollower(chat).resume(stored)
    textbox, _, _ = next(reloaded)
    assert textbox.stop_btn is True and textbox.interactive is False  # the new page shows Stop
    engine.release.set()
    rest = list(reloaded)

    saved = chat.service.store.get(OWNER, conv.id)
    assert saved is not None and saved.messages[-1].text == "Hello world"
    assert saved.messages[-1].finish == "stop"
    assert "Hello world" in str(rest[-2][1].value)  # the answer as saved, then the composer back
    assert rest[-1][0].interactive is True


def test_only_stop_stops_the_answer(handlers: tuple[ChatHandlers, GatedFakeEngine]) -> None:
    chat, engine = handlers
    conv, stored = asked(chat.service)
    page_answer(chat, stored)
    try:
        textbox, chatbot = AnswerFollower(chat).stop(stored)
        wait_for(lambda: chat.service.answering(OWNER, conv.id) is None)
    finally:
        engine.release.set()
    saved = chat.service.store.get(OWNER, conv.id)
    assert saved is not None and saved.messages[-1].finish == "cancelled"
    assert saved.messages[-1].text == "Hello"
    assert "(stopped)" in str(chatbot.value) and textbox.interactive is True  # Stop shows it as saved


def test_an_answer_is_saved_while_it_streams(
    handlers: tuple[ChatHandlers, GatedFakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_service, "SAVE_INTERVAL_S", 0.0)
    chat, engine = handlers
    conv, stored = asked(chat.service)
    page_answer(chat, stored)
    try:
        wait_for(lambda: chat.service.store.get(OWNER, conv.id).messages[-1].text == "Hello")
        assert chat.service.store.get(OWNER, conv.id).messages[-1].finish is None
    finally:
        engine.release.set()


def test_a_second_answer_for_the_same_conversation_is_refused(
    handlers: tuple[ChatHandlers, GatedFakeEngine],
) -> None:
    chat, engine = handlers
    conv, stored = asked(chat.service)
    page_answer(chat, stored)
    try:
        with pytest.raises(InputRejected, match="still answering"):
            chat.service.start(conv, chat.service.prepare(conv))
    finally:
        engine.release.set()


def _app_process(data_dir: Path, checkpoint: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, str(REPO_ROOT / "app.py"), "--model", str(checkpoint), "--device", "cpu"]
    command += ["--data-dir", str(data_dir), "--port", str(port), "--host", "127.0.0.1"]
    command += ["--hd-num-single", "1", "--hd-num-multi", "1"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _saved_answer(store_dir: Path, owner: str, conversation_id: str) -> str:
    """The answer as the running app saved it, read from its store by a second process."""
    with diskcache.Cache(str(store_dir)) as cache:
        raw = cache.get(("conv", owner, conversation_id))
    return "" if raw is None else Conversation.from_dict(json.loads(raw)).messages[-1].text


def test_an_answer_cut_by_kill_9_shows_what_was_saved_marked_interrupted(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    process = _app_process(data_dir, tiny_checkpoint, port)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/gradio_api/info"), timeout_s=180)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        job = client.submit("Write a very long essay.", [], "", api_name="/chat", **LONG)
        wait_for(lambda: len(job.outputs()) > 1)
        owner, conversation_id = parse_handle(job.outputs()[-1][1])
        wait_for(lambda: _saved_answer(data_dir / "store", owner, conversation_id) != "")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    saved = _saved_answer(data_dir / "store", owner, conversation_id)

    engine = native_engine(tiny_checkpoint)
    restarted = start_app(app_settings(data_dir), engine)
    try:
        conv = restarted.store.get(owner, conversation_id)
        assert conv is not None and conv.messages[-1].text == saved != ""
        assert conv.messages[-1].finish == "interrupted"
        shown = restarted.services.chat.chatbot(conv)[-1]["content"]
        assert shown.startswith(saved) and "interrupted" in shown and "Retry" in shown
    finally:
        restarted.close()
        engine.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_next_message_is_accepted_once_the_answer_ends(
    handlers: tuple[ChatHandlers, GatedFakeEngine],
) -> None:
    chat, engine = handlers
    conv, stored = asked(chat.service)
    event = page_answer(chat, stored)
    engine.release.set()
    list(event)
    conv, _ = chat.service.add_message(chat.service.open(OWNER, conv.id), "And then?", ())
    assert [m.text for m in conv.messages] == ["Hi there", "Hello world", "And then?"]
