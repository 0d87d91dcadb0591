"""The chat says its sentences in the language of the request that asked: a refusal at once, and a failure
or a note written later on the answer's own threads (the answer, the engine's worker), after the request has
gone. English outside a request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_harness import app_settings
from conftest import native_engine
from test_chat_service import OWNER
from test_ui_api import wait_for

from ixc_app.chat import ChatSettings, add_user_message, new_conversation, to_chatbot
from ixc_app.chat.drafts import Draft, InputRejected
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.request import PreparedRequest
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.engines.base import EngineCapabilities, GenerationParams, Request, StreamItem
from ixc_app.engines.remote.replies import http_error
from ixc_app.i18n import speaking
from ixc_app.ixc.prompt import Turn
from ixc_app.store import ConversationNotFound, Store


class FailingFakeEngine:
    """A fake engine (tests only) whose every answer fails with an error no user should read."""

    capabilities = EngineCapabilities(name="failing-fake", context_length=4096)
    tokenizer = None

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
        yield


def chat_service(tmp_path: Path, engine: object) -> ChatService:
    settings = app_settings(tmp_path / "data")
    return ChatService(
        settings,
        EngineRunner(engine),  # type: ignore[arg-type]
        Store.from_settings(settings),
        Preferences(tmp_path / "preferences"),
    )


def test_a_refused_message_is_said_in_the_requests_language(tmp_path: Path) -> None:
    service = chat_service(tmp_path, FailingFakeEngine())
    with speaking("zh"), pytest.raises(InputRejected) as refused:
        service.check_draft(Draft("   "), None)
    assert str(refused.value) == "消息为空；请输入问题，或附上图片或视频。"
    with speaking("zh"), pytest.raises(InputRejected) as refused:
        service.check_draft(Draft("x" * (service.limits.max_text_chars + 1)), None)
    assert f"{service.limits.max_text_chars + 1:,} 个字符" in str(refused.value)
    with pytest.raises(InputRejected, match=r"^The message is empty; type a question"):
        service.check_draft(Draft(""), None)
    with speaking("zh"), pytest.raises(ConversationNotFound, match="找不到此对话"):
        service.open(OWNER, "no-such-conversation")


def test_a_new_conversation_is_named_in_its_language_and_its_first_message_still_names_it() -> None:
    with speaking("zh"):
        conv = new_conversation(OWNER, ChatSettings())
    assert conv.title == "新对话"
    assert add_user_message(conv, "What is in this picture?").title == "What is in this picture?"


def test_an_answer_started_in_chinese_fails_in_chinese_after_its_request_has_gone(tmp_path: Path) -> None:
    service = chat_service(tmp_path, FailingFakeEngine())
    conv = add_user_message(new_conversation(OWNER, ChatSettings()), "Hi there")
    service.store.put(conv)
    prepared = PreparedRequest(Request(turns=(Turn("user", "Hi there"),)), 0, 3)
    with speaking("zh"):
        service.start(conv, prepared)
    wait_for(lambda: service.answering(OWNER, conv.id) is None)
    failed = service.store.get(OWNER, conv.id)
    assert failed is not None
    assert failed.messages[-1].error == "模型在回答时出错（详情见服务器日志）；请重试。"
    with speaking("zh"):
        shown = to_chatbot(failed, service.store.media.path)[-1]["content"]
    assert "**错误：**模型在回答时出错" in str(shown)


def test_the_engines_refusal_on_its_worker_thread_is_in_the_language_of_the_request(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    engine = native_engine(tiny_checkpoint)
    try:
        service = chat_service(tmp_path, engine)
        conv = add_user_message(new_conversation(OWNER, ChatSettings()), "Hi there")
        service.store.put(conv)
        too_long = GenerationParams(max_new_tokens=engine.capabilities.context_length)
        prepared = PreparedRequest(Request(turns=(Turn("user", "Hi there"),), params=too_long), 0, 3)
        with speaking("zh"):
            service.start(conv, prepared)
        wait_for(lambda: service.answering(OWNER, conv.id) is None)
        failed = service.store.get(OWNER, conv.id)
        assert failed is not None
        assert "超过了模型" in (failed.messages[-1].error or "")
    finally:
        engine.close()


def test_a_model_servers_error_is_said_in_the_requests_language() -> None:
    with speaking("zh"):
        busy = http_error(503, b"", "http://gpu-box:23333", "internlm-xcomposer2d5-7b")
    assert str(busy) == "http://gpu-box:23333 上的模型服务器正忙（HTTP 503）；请稍后重试。"
    busy = http_error(503, b"", "http://gpu-box:23333", "internlm-xcomposer2d5-7b")
    assert str(busy) == "The model server at http://gpu-box:23333 is busy (HTTP 503); try again in a moment."
