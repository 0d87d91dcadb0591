"""Chat settings are kept when they change, new conversations start from the user's last ones, and a
conversation may carry its own system prompt (the default staying the official meta instruction, byte for
byte) through every engine: the native template, the remote client and our own server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from app_harness import app_settings
from test_template import CHAT_META_TEXT as OFFICIAL

from ixc_app.chat import ChatSettings, add_user_message, new_conversation, to_request
from ixc_app.chat.drafts import InputRejected
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.request import DEFAULT_META_INSTRUCTION
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.config import Limits
from ixc_app.engines.base import EngineCapabilities, GenerationParams
from ixc_app.engines.remote.messages import DataUrls, chat_body
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import load_rgb
from ixc_app.serve.inputs import Defaults
from ixc_app.serve.inputs import to_request as served_request
from ixc_app.serve.protocol import ChatCompletionRequest
from ixc_app.store import Store
from ixc_app.ui.settings_form import by_name, form_values, settings_from_form

OWNER = "owner-token-aaaaaaaaaaaa"
OTHER = "owner-token-bbbbbbbbbbbb"
PIRATE = "You are a pirate.\nAnswer in one sentence."


class NoEngine:
    """A fake engine (tests only) for the service's settings methods, which never call it."""

    capabilities = EngineCapabilities(name="no-engine", context_length=4096)
    tokenizer = None


@pytest.fixture
def tokenizer(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ChatService]:
    settings = app_settings(tmp_path / "data")
    store = Store.from_settings(settings)
    preferences = Preferences(tmp_path / "preferences")
    yield ChatService(settings, EngineRunner(NoEngine()), store, preferences)  # type: ignore[arg-type]
    preferences.close()
    store.close()


def form(**changes: object) -> dict[str, object]:
    return {**by_name(form_values(ChatSettings())), **changes}


def test_the_default_system_prompt_is_the_official_one_byte_for_byte(tokenizer: Tokenizer) -> None:
    assert DEFAULT_META_INSTRUCTION == OFFICIAL
    conv = add_user_message(new_conversation(OWNER), "Hi")
    assert to_request(conv, tokenizer, str, context_budget=4096).request.meta_instruction == OFFICIAL
    # The settings panel shows it, and sending it back unchanged (or with a browser's CRLF line ends, or
    # emptied) keeps the official one rather than a copy of it.
    assert form()["meta_instruction"] == OFFICIAL
    for shown in (OFFICIAL, OFFICIAL.replace("\n", "\r\n"), "", "  \n"):
        assert settings_from_form(form(meta_instruction=shown), Limits()).meta_instruction is None


def test_a_custom_system_prompt_is_the_system_turn(tokenizer: Tokenizer) -> None:
    settings = settings_from_form(form(meta_instruction=PIRATE), Limits())
    assert settings.meta_instruction == PIRATE
    assert by_name(form_values(settings))["meta_instruction"] == PIRATE
    conv = add_user_message(new_conversation(OWNER, settings), "Hi")
    request = to_request(conv, tokenizer, str, context_budget=4096).request
    assert request.meta_instruction == PIRATE
    off = replace(conv, settings=replace(settings, use_meta=False))
    assert to_request(off, tokenizer, str, context_budget=4096).request.meta_instruction is None


def test_a_system_prompt_over_the_text_limit_is_refused() -> None:
    with pytest.raises(InputRejected, match="The system prompt is 21 characters long"):
        settings_from_form(form(meta_instruction="x" * 21), Limits(max_text_chars=20))


def test_the_remote_engine_sends_the_custom_system_prompt_and_our_server_reads_it_back(
    tokenizer: Tokenizer, tmp_path: Path
) -> None:
    conv = add_user_message(new_conversation(OWNER, ChatSettings(meta_instruction=PIRATE)), "Hi")
    request = to_request(conv, tokenizer, str, context_budget=4096).request
    body = chat_body(request, "ixc", DataUrls(load_rgb))
    assert body["messages"][0] == {"role": "system", "content": PIRATE}
    served = served_request(
        ChatCompletionRequest(**body), "base", tmp_path, Defaults(OFFICIAL, 24, 6, Limits())
    )
    assert served.meta_instruction == PIRATE


def test_changed_settings_are_kept_for_the_conversation_and_as_the_owners_defaults(
    service: ChatService,
) -> None:
    app_defaults = service.default_settings()
    assert service.default_settings(OWNER) == app_defaults
    conv = add_user_message(new_conversation(OWNER, app_defaults), "Hi")
    service.store.put(conv)
    chosen = replace(app_defaults, params=GenerationParams(max_new_tokens=77), meta_instruction=PIRATE)

    service.remember_settings(OWNER, conv.id, chosen)
    stored = service.store.get(OWNER, conv.id)
    assert stored is not None and stored.settings == chosen and stored.messages == conv.messages
    assert service.default_settings(OWNER) == chosen
    assert service.default_settings(OTHER) == app_defaults

    # With no conversation open, only the defaults change; they outlive the process.
    later = replace(chosen, image_mode="multi")
    service.remember_settings(OWNER, "", later)
    assert service.store.get(OWNER, conv.id).settings == chosen  # type: ignore[union-attr]
    service.preferences.close()
    service.preferences = Preferences(service.preferences.root)
    assert service.default_settings(OWNER) == later


def test_settings_of_a_deleted_conversation_do_not_bring_it_back(service: ChatService) -> None:
    service.remember_settings(OWNER, "no-such-conversation-id", ChatSettings(use_meta=False))
    assert service.store.get(OWNER, "no-such-conversation-id") is None
    assert service.store.list(OWNER) == []
