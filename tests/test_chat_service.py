"""`ChatService.answer` saves its answer into the conversation as stored when the answer ends, so what the
user did while it streamed (delete, rename, like, edit) is kept; and chat text cannot place images itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from app_harness import app_settings

from ixc_app.chat import (
    ChatSettings,
    Conversation,
    PreparedRequest,
    add_user_message,
    append_answer,
    edit_user_message,
    finish_answer,
    new_conversation,
    retry,
    set_feedback,
    start_answer,
)
from ixc_app.chat.drafts import InputRejected
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.chat.text import user_text
from ixc_app.engines.base import Delta, EngineCapabilities, Finished, Request, StreamItem
from ixc_app.ixc.prompt import Turn
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.store import ConversationNotFound, Store
from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.identity import Owners, new_owner

OWNER = "owner-1"


class GatedFakeEngine:
    """A fake engine (tests only): streams "Hello", then waits for `release` before " world" and the end."""

    capabilities = EngineCapabilities(name="gated-fake", context_length=4096)

    def __init__(self) -> None:
        self.release = threading.Event()
        self.tokenizer: Tokenizer | None = None

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        yield Delta("Hello")
        self.release.wait(timeout=30)
        yield Delta(" world")
        yield Finished("stop", prompt_tokens=3, generated_tokens=2)


@pytest.fixture
def engine() -> GatedFakeEngine:
    return GatedFakeEngine()


@pytest.fixture
def service(tmp_path: Path, engine: GatedFakeEngine) -> Iterator[ChatService]:
    settings = app_settings(tmp_path / "data")
    store = Store.from_settings(settings)
    preferences = Preferences(tmp_path / "preferences")
    yield ChatService(settings, EngineRunner(engine), store, preferences)  # type: ignore[arg-type]
    preferences.close()
    store.close()


def asked(service: ChatService) -> Conversation:
    conv = add_user_message(new_conversation(OWNER, ChatSettings()), "Hi there")
    service.store.put(conv)
    return conv


def answer_midway(service: ChatService, conv: Conversation) -> Iterator[Conversation]:
    """The answer stream, advanced to its first text (the engine then waits to be released)."""
    prepared = PreparedRequest(Request(turns=(Turn("user", conv.messages[-1].text),)), 0, 3)
    stream = service.answer(conv, prepared)
    while not next(stream).messages[-1].text:
        pass
    return stream


def test_a_conversation_deleted_while_answering_stays_deleted(
    service: ChatService, engine: GatedFakeEngine
) -> None:
    conv = asked(service)
    stream = answer_midway(service, conv)
    assert service.delete(OWNER, conv.id)
    engine.release.set()
    list(stream)
    assert service.store.get(OWNER, conv.id) is None
    assert service.conversations(OWNER) == []


def test_a_conversation_deleted_then_stopped_stays_deleted(service: ChatService) -> None:
    conv = asked(service)
    stream = answer_midway(service, conv)
    service.delete(OWNER, conv.id)
    stream.close()
    assert service.store.get(OWNER, conv.id) is None


def test_a_rename_and_a_like_made_while_answering_are_kept(
    service: ChatService, engine: GatedFakeEngine
) -> None:
    conv = asked(service)
    stream = answer_midway(service, conv)
    service.store.rename(OWNER, conv.id, "Greetings")
    liked = set_feedback(service.store.get(OWNER, conv.id), 1, "like")
    service.store.put(liked)
    engine.release.set()
    list(stream)
    saved = service.store.get(OWNER, conv.id)
    assert saved is not None and saved.title == "Greetings"
    assert [(m.role, m.text) for m in saved.messages] == [("user", "Hi there"), ("assistant", "Hello world")]
    assert saved.messages[-1].feedback == "like" and saved.messages[-1].finish == "stop"
    assert [s.title for s in service.conversations(OWNER)] == ["Greetings"]


def test_an_edit_made_while_answering_is_not_overwritten(
    service: ChatService, engine: GatedFakeEngine
) -> None:
    conv = asked(service)
    stream = answer_midway(service, conv)
    edited = edit_user_message(service.store.get(OWNER, conv.id), 0, "Something else")
    service.store.put(edited)
    engine.release.set()
    list(stream)
    saved = service.store.get(OWNER, conv.id)
    assert saved is not None and [(m.role, m.text) for m in saved.messages] == [("user", "Something else")]


def test_a_retried_answer_keeps_its_versions_and_one_is_shown_but_not_while_it_is_written(
    service: ChatService, engine: GatedFakeEngine
) -> None:
    conv = asked(service)
    engine.release.set()
    list(service.answer(conv, PreparedRequest(Request(turns=(Turn("user", "Hi there"),)), 0, 3)))
    retried = retry(service.store.get(OWNER, conv.id))
    service.store.put(retried)
    engine.release.clear()
    stream = answer_midway(service, retried)
    with pytest.raises(InputRejected, match="still being written"):
        service.show_version(OWNER, conv.id, 0)
    engine.release.set()
    list(stream)
    shown = service.show_version(OWNER, conv.id, 0)
    saved = service.store.get(OWNER, conv.id)
    assert saved == shown and saved.messages[-1].version == 0
    assert [v.finish for v in saved.messages[-1].all_versions] == ["stop", "stop"]
    with pytest.raises(ConversationNotFound):
        service.show_version(OWNER, "no-such-conversation", 0)


def test_a_retry_left_waiting_with_no_answer_running_is_put_back_when_read(
    service: ChatService, engine: GatedFakeEngine
) -> None:
    """The retry was saved but its answer never started (stopped or left while queued): the next read
    shows the answer before it again, saved, while a retry whose answer runs is left to it."""
    conv = asked(service)
    engine.release.set()
    list(service.answer(conv, PreparedRequest(Request(turns=(Turn("user", "Hi there"),)), 0, 3)))
    answered_once = service.store.get(OWNER, conv.id)
    service.store.put(retry(answered_once))
    settled = service.settled(OWNER, conv.id)
    assert settled is not None and settled.messages[-1].text == answered_once.messages[-1].text
    assert service.store.get(OWNER, conv.id) == settled
    retried = retry(settled)
    service.store.put(retried)
    engine.release.clear()
    stream = answer_midway(service, retried)
    assert service.settled(OWNER, conv.id).messages[-1].finish is None  # its answer is running
    engine.release.set()
    list(stream)


def test_switching_to_a_conversation_whose_retry_never_started_shows_the_answer_before_it(
    service: ChatService,
) -> None:
    """Its retry was queued when the page opened another conversation (which cancels it): opening it again
    shows the answer it had, not an empty one nothing will write."""
    owner = new_owner()
    conv = start_answer(add_user_message(new_conversation(owner, ChatSettings()), "Hi there"))
    conv = finish_answer(append_answer(conv, "The first answer"), Finished("stop", 10, 3))
    service.store.put(retry(conv))
    handlers = ChatHandlers(service, examples=[], owners=Owners(service.settings.login_secret))
    view = handlers.switch({"owner": owner, "conversation": ""}, conv.id)
    chatbot = next(value for value in view if isinstance(value, gr.Chatbot))
    assert chatbot.value[-1]["content"] == [{"text": "The first answer", "type": "text"}]
    assert service.store.get(owner, conv.id).messages[-1].finish == "stop"


def test_image_placeholders_typed_by_a_user_are_removed() -> None:
    assert user_text("Is <ImageHere> red? <Image<ImageHere>Here>") == "Is  red? "
    assert user_text("plain text") == "plain text"


def test_the_conversation_list_refreshes_from_the_browser_state(service: ChatService) -> None:
    """After a message is added the page lists the conversation, from the BrowserState value it sends."""
    owner = new_owner()
    conv = add_user_message(new_conversation(owner, ChatSettings()), "Hi there")
    service.store.put(conv)
    handlers = ChatHandlers(service, examples=[], owners=Owners(service.settings.login_secret))
    radio = handlers.refresh_list({"owner": owner, "conversation": conv.id})
    assert radio.choices == [(conv.title, conv.id)]
    assert radio.value == conv.id


@pytest.fixture
def service_with_tokenizer(
    tmp_path: Path, engine: GatedFakeEngine, real_tokenizer_path: Path
) -> Iterator[ChatService]:
    settings = app_settings(tmp_path / "data")
    store = Store.from_settings(settings)
    engine.tokenizer = Tokenizer.from_file(real_tokenizer_path)
    preferences = Preferences(tmp_path / "preferences")
    yield ChatService(settings, EngineRunner(engine), store, preferences)  # type: ignore[arg-type]
    preferences.close()
    store.close()


def answered(service: ChatService) -> Conversation:
    """A stored conversation whose one question has its answer."""
    conv = start_answer(add_user_message(new_conversation(OWNER, ChatSettings()), "Hi there"))
    conv = finish_answer(append_answer(conv, "Hello."), Finished("stop", prompt_tokens=3, generated_tokens=2))
    service.store.put(conv)
    return conv


def test_a_conversation_deleted_while_files_are_read_is_not_revived(
    service_with_tokenizer: ChatService,
) -> None:
    service = service_with_tokenizer
    read_before_ingest = service.open(OWNER, answered(service).id)
    service.delete(OWNER, read_before_ingest.id)
    with pytest.raises(InputRejected, match="deleted while the message was being prepared"):
        service.add_message(read_before_ingest, "And now?", ())
    assert service.store.get(OWNER, read_before_ingest.id) is None


def test_a_rename_made_while_files_are_read_is_kept(service_with_tokenizer: ChatService) -> None:
    service = service_with_tokenizer
    read_before_ingest = service.open(OWNER, answered(service).id)
    service.store.rename(OWNER, read_before_ingest.id, "Renamed meanwhile")
    conv, _ = service.add_message(read_before_ingest, "And now?", ())
    assert conv.title == "Renamed meanwhile"
    assert service.store.get(OWNER, conv.id).title == "Renamed meanwhile"
    assert [m.text for m in conv.messages] == ["Hi there", "Hello.", "And now?"]
