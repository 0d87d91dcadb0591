"""Answer versions: a retry keeps the earlier answers, the user switches between them, the model's history
holds the shown one only, and conversations saved before versions existed still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_chat import OWNER, answered, media_path

from ixc_app.chat import (
    MAX_VERSIONS,
    Conversation,
    ConversationError,
    add_user_message,
    append_answer,
    edit_user_message,
    finish_answer,
    new_conversation,
    put_back_waiting,
    retry,
    set_feedback,
    show_version,
    start_answer,
    to_chatbot,
    to_request,
    undo,
)
from ixc_app.engines.base import Finished
from ixc_app.ixc.tokenizer import Tokenizer


def answer_again(conv: Conversation, text: str, tokens: int = 3) -> Conversation:
    """Retry the last answer and stream `text` as the new one, as the service does."""
    conv = append_answer(start_answer(retry(conv)), text)
    return finish_answer(conv, Finished("stop", prompt_tokens=10, generated_tokens=tokens))


def three_versions() -> Conversation:
    conv = answered(new_conversation(OWNER), "q", "first")
    return answer_again(answer_again(conv, "second", 4), "third", 5)


def texts(conv: Conversation) -> list[str]:
    return [v.text for v in conv.messages[-1].all_versions]


@pytest.fixture(scope="module")
def tokenizer(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


def test_each_retry_adds_the_new_answer_as_the_last_version() -> None:
    conv = three_versions()
    last = conv.messages[-1]
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert (last.text, last.version, texts(conv)) == ("third", 2, ["first", "second", "third"])
    assert [v.stats.generated_tokens for v in last.all_versions if v.stats] == [3, 4, 5]


def test_another_version_is_shown_with_its_own_stats_and_feedback_and_all_are_kept() -> None:
    conv = set_feedback(three_versions(), 1, "like")
    first = show_version(conv, 0)
    shown = first.messages[-1]
    assert (shown.text, shown.version, shown.feedback) == ("first", 0, None)
    assert shown.stats is not None and shown.stats.generated_tokens == 3
    assert texts(first) == ["first", "second", "third"]
    assert show_version(first, 2) == conv
    assert show_version(conv, 2) == conv
    again = answer_again(show_version(conv, 1), "fourth")
    assert (texts(again), again.messages[-1].version) == (["first", "second", "third", "fourth"], 3)


def test_only_the_last_finished_answer_switches_and_the_rest_is_refused_with_a_sentence() -> None:
    conv = three_versions()
    with pytest.raises(ConversationError, match="does not exist"):
        show_version(conv, 3)
    with pytest.raises(ConversationError, match="does not exist"):
        show_version(conv, -1)
    with pytest.raises(ConversationError, match="still being written"):
        show_version(start_answer(retry(conv)), 0)
    with pytest.raises(ConversationError, match="no answer to show another version of"):
        show_version(add_user_message(conv, "q2"), 0)
    later = show_version(answered(conv, "q2", "a2"), 0)
    assert later.messages[1] == conv.messages[1]
    assert [m.text for m in later.messages] == ["q", "third", "q2", "a2"]
    assert undo(later).messages[-1] == conv.messages[-1]
    assert show_version(undo(later), 0).messages[-1].text == "first"


def test_the_model_sees_the_shown_version_only(tokenizer: Tokenizer) -> None:
    conv = show_version(three_versions(), 1)
    followed = add_user_message(conv, "And then?")
    turns = to_request(followed, tokenizer, media_path, context_budget=4096).request.turns
    assert [t.text for t in turns] == ["q", "second", "And then?"]
    retried = to_request(start_answer(retry(conv)), tokenizer, media_path, context_budget=4096).request
    assert [t.text for t in retried.turns] == ["q"]


def test_a_retry_waiting_for_its_answer_takes_no_new_message() -> None:
    with pytest.raises(ConversationError, match="no answer yet"):
        add_user_message(retry(three_versions()), "q2")


def test_undo_and_edit_drop_the_versions_with_the_answer() -> None:
    conv = answered(new_conversation(OWNER), "q0", "a0")
    conv = answer_again(answered(conv, "q", "first"), "second")
    assert [m.text for m in undo(conv).messages] == ["q0", "a0"]
    assert undo(conv).messages[-1].versions == ()
    assert [m.text for m in edit_user_message(conv, 2, "q again").messages] == ["q0", "a0", "q again"]


def test_versions_survive_json_and_conversations_saved_without_them_load() -> None:
    conv = set_feedback(show_version(three_versions(), 0), 1, "dislike")
    assert Conversation.from_dict(json.loads(json.dumps(conv.to_dict()))) == conv
    old = answered(new_conversation(OWNER), "q", "a").to_dict()
    for message in old["messages"]:
        del message["versions"], message["version"]
    loaded = Conversation.from_dict(old)
    assert (loaded.messages[-1].versions, loaded.messages[-1].version) == ((), 0)
    assert to_chatbot(loaded, media_path)[-1] == {"role": "assistant", "content": "a"}
    broken = conv.to_dict()
    broken["messages"][-1]["version"] = 7
    with pytest.raises(ValueError, match="versions"):
        Conversation.from_dict(broken)


def test_the_chatbot_shows_the_version_buttons_under_the_last_finished_answer_only() -> None:
    conv = show_version(three_versions(), 0)
    last = to_chatbot(conv, media_path)[-1]
    assert last["content"] == "first"
    assert last["options"] == [
        {"value": "2", "label": "‹"},
        {"value": "0", "label": "1/3"},
        {"value": "1", "label": "›"},
    ]
    followed = to_chatbot(answered(conv, "q2", "a2"), media_path)
    assert len(followed) == 4 and not any("options" in m for m in followed)
    assert "options" not in to_chatbot(start_answer(retry(conv)), media_path)[-1]
    assert "options" not in to_chatbot(answered(new_conversation(OWNER), "q", "a"), media_path)[-1]


def test_a_retry_whose_answer_never_started_shows_the_version_before_it_again() -> None:
    """Stopped or left while it waited for the engine, nothing will write the empty answer a retry left."""
    conv = three_versions()
    waiting = retry(conv)
    assert waiting.messages[-1].text == "" and waiting.messages[-1].finish is None
    restored = put_back_waiting(waiting)
    assert restored.messages[-1].text == "third" and restored.messages[-1].finish == "stop"
    assert [v.text for v in restored.messages[-1].all_versions] == ["first", "second", "third"]
    assert put_back_waiting(conv) is conv


def test_an_answer_keeps_at_most_max_versions_the_oldest_going_first() -> None:
    conv = answered(new_conversation(OWNER), "q", "answer 0")
    for i in range(1, MAX_VERSIONS + 5):
        conv = answer_again(conv, f"answer {i}")
    versions = [v.text for v in conv.messages[-1].all_versions]
    assert len(versions) == MAX_VERSIONS
    assert versions[-1] == f"answer {MAX_VERSIONS + 4}" and versions[0] == "answer 5"
