"""The conversation: operations, JSON round trip, the engine request with trimming, Chatbot messages."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ixc_app.chat import (
    DEFAULT_TITLE,
    ChatSettings,
    Conversation,
    ConversationError,
    MediaItem,
    add_user_message,
    append_answer,
    edit_user_message,
    fail_answer,
    finish_answer,
    new_conversation,
    rename,
    retry,
    set_feedback,
    start_answer,
    to_chatbot,
    to_request,
    undo,
)
from ixc_app.chat.request import image_ref
from ixc_app.engines.base import Finished, GenerationParams
from ixc_app.ixc.budget import ContextBudgetExceeded
from ixc_app.ixc.template import CHAT_META
from ixc_app.ixc.tokenizer import Tokenizer

OWNER = "owner-token-aaaaaaaaaaaa"
IMAGE = MediaItem(key="a" * 64, kind="image", name="cat.png", mime="image/png", width=448, height=448)
IMAGE2 = MediaItem(key="b" * 64, kind="image", name="dog.jpg", mime="image/jpeg", width=448, height=448)
VIDEO = MediaItem(
    key="c" * 64,
    kind="video",
    name="clip.mp4",
    mime="video/mp4",
    width=1280,
    height=720,
    duration_s=10.0,
    strip_key="d" * 64,
    strip_width=560,
    strip_height=3920,
    poster_key="e" * 64,
    playable=True,
)
MKV = replace(VIDEO, key="f" * 64, name="clip.mkv", mime="video/x-matroska", playable=False)


def media_path(key: str) -> str:
    return f"/media/{key}"


def answered(
    conv: Conversation, question: str, answer: str, media: tuple[MediaItem, ...] = ()
) -> Conversation:
    conv = start_answer(add_user_message(conv, question, media))
    conv = append_answer(append_answer(conv, answer[: len(answer) // 2]), answer[len(answer) // 2 :])
    return finish_answer(conv, Finished("stop", prompt_tokens=10, generated_tokens=3))


@pytest.fixture(scope="module")
def tokenizer(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


def test_a_streamed_answer_is_assembled_and_finished_with_stats() -> None:
    conv = new_conversation(OWNER, now=100.0)
    conv = add_user_message(conv, "  What is   in\nthe picture? ", (IMAGE,), now=101.0)
    assert conv.title == "What is in the picture?"
    conv = start_answer(conv, now=102.0)
    assert conv.messages[-1].finish is None
    conv = append_answer(append_answer(conv, "A cat"), " on a sofa.")
    conv = finish_answer(conv, Finished("length", 900, 7, cached_tokens=5), dropped_messages=2, now=103.0)
    last = conv.messages[-1]
    assert (last.role, last.text, last.finish) == ("assistant", "A cat on a sofa.", "length")
    assert last.stats is not None
    assert (last.stats.prompt_tokens, last.stats.generated_tokens, last.stats.dropped_messages) == (900, 7, 2)
    assert (conv.created, conv.updated) == (100.0, 103.0)


def test_title_comes_from_the_first_message_only_and_rename_overrides_it() -> None:
    conv = add_user_message(new_conversation(OWNER), "", (IMAGE, IMAGE2))
    assert conv.title == "Images"
    long = add_user_message(new_conversation(OWNER), "word " * 40)
    assert len(long.title) <= 60 and long.title.endswith("…")
    conv = answered(new_conversation(OWNER), "first question", "answer")
    conv = add_user_message(conv, "second question")
    assert conv.title == "first question"
    assert rename(conv, "  My   chat ").title == "My chat"
    with pytest.raises(ConversationError, match="needs a name"):
        rename(conv, "   ")


def test_empty_messages_and_two_questions_in_a_row_are_refused() -> None:
    conv = new_conversation(OWNER)
    with pytest.raises(ConversationError, match="empty"):
        add_user_message(conv, "  ")
    conv = add_user_message(conv, "hello")
    with pytest.raises(ConversationError, match="no answer yet"):
        add_user_message(conv, "hello again")


def test_retry_keeps_the_last_answer_as_a_version_and_leaves_room_for_the_next() -> None:
    conv = answered(answered(new_conversation(OWNER), "q1", "a1"), "q2", "a2")
    retried = retry(conv, now=5.0)
    assert [m.text for m in retried.messages] == ["q1", "a1", "q2", ""]
    assert [v.text for v in retried.messages[-1].versions] == ["a2"]
    assert retried.messages[1] == conv.messages[1]
    assert retry(retried, now=5.0) == retried


def test_undo_drops_the_last_question_and_its_answer() -> None:
    conv = answered(answered(new_conversation(OWNER), "q1", "a1"), "q2", "a2")
    assert [m.text for m in undo(conv).messages] == ["q1", "a1"]
    unanswered = add_user_message(answered(new_conversation(OWNER), "q1", "a1"), "q2")
    assert [m.text for m in undo(unanswered).messages] == ["q1", "a1"]
    with pytest.raises(ConversationError, match="nothing to undo"):
        undo(new_conversation(OWNER))


def test_edit_replaces_the_text_keeps_the_media_and_drops_what_followed() -> None:
    conv = answered(answered(new_conversation(OWNER), "q1", "a1", (IMAGE,)), "q2", "a2")
    edited = edit_user_message(conv, 0, "q1 again")
    assert len(edited.messages) == 1
    assert edited.messages[0].text == "q1 again"
    assert edited.messages[0].media == (IMAGE,)
    with pytest.raises(ConversationError, match="Only your own messages"):
        edit_user_message(conv, 1, "not mine")
    with pytest.raises(ConversationError, match="Only your own messages"):
        edit_user_message(conv, 9, "out of range")


def test_a_failed_answer_keeps_its_partial_text_and_can_be_retried() -> None:
    conv = append_answer(start_answer(add_user_message(new_conversation(OWNER), "q")), "partial")
    failed = fail_answer(conv, "The engine ran out of memory; try a shorter message.")
    assert failed.messages[-1].text == "partial"
    assert (failed.messages[-1].finish, failed.messages[-1].error) == (
        "error",
        "The engine ran out of memory; try a shorter message.",
    )
    kept = retry(failed).messages[-1].versions
    assert [(v.text, v.finish, v.error) for v in kept] == [("partial", "error", failed.messages[-1].error)]
    before_start = fail_answer(add_user_message(new_conversation(OWNER), "q"), "The engine is unavailable.")
    assert [m.role for m in before_start.messages] == ["user", "assistant"]
    assert before_start.messages[-1].error == "The engine is unavailable."
    assert [m.role for m in retry(before_start).messages] == ["user"]


def test_feedback_applies_to_answers_only() -> None:
    conv = answered(new_conversation(OWNER), "q", "a")
    assert set_feedback(conv, 1, "like").messages[1].feedback == "like"
    assert set_feedback(set_feedback(conv, 1, "dislike"), 1, None).messages[1].feedback is None
    with pytest.raises(ConversationError):
        set_feedback(conv, 0, "like")


def test_json_round_trip_is_lossless_and_plain() -> None:
    conv = answered(
        new_conversation(OWNER, ChatSettings(image_mode="multi", use_meta=False)), "q", "a", (VIDEO,)
    )
    conv = set_feedback(add_user_message(conv, "more", (IMAGE, MKV)), 1, "like")
    text = json.dumps(conv.to_dict())
    again = Conversation.from_dict(json.loads(text))
    assert again == conv
    assert again.media_keys == {"a" * 64, "c" * 64, "d" * 64, "e" * 64, "f" * 64}


def test_from_dict_ignores_fields_it_does_not_know() -> None:
    data = answered(new_conversation(OWNER), "q", "a").to_dict()
    data["future"] = 1
    data["messages"][1]["stats"]["future"] = 2
    data["settings"]["params"]["future"] = 3
    assert Conversation.from_dict(data).messages[1].text == "a"


def conversation_with_three_image_turns() -> Conversation:
    conv = new_conversation(OWNER)
    conv = answered(conv, "Describe the first image.", "A cat.", (IMAGE,))
    conv = answered(conv, "And the second one?", "A dog.", (IMAGE2,))
    return add_user_message(conv, "Which animal is bigger?")


def test_request_holds_every_turn_when_it_fits(tokenizer: Tokenizer) -> None:
    conv = conversation_with_three_image_turns()
    prepared = to_request(conv, tokenizer, media_path, context_budget=16384)
    request = prepared.request
    assert prepared.dropped_messages == 0
    assert [t.text for t in request.turns] == [m.text for m in conv.messages]
    assert request.turns[0].images[0].path == media_path(IMAGE.key)
    assert request.meta_instruction == CHAT_META
    assert (request.hd_num_single, request.hd_num_multi) == (24, 6)
    assert prepared.prompt_tokens > 2 * 841


def test_oldest_turns_are_dropped_to_fit_and_the_current_one_is_kept(tokenizer: Tokenizer) -> None:
    conv = conversation_with_three_image_turns()
    params = GenerationParams(max_new_tokens=100)
    conv = replace(conv, settings=replace(conv.settings, params=params))
    full = to_request(conv, tokenizer, media_path, context_budget=100_000)
    budget = full.prompt_tokens + 100 - 1
    trimmed = to_request(conv, tokenizer, media_path, context_budget=budget)
    assert trimmed.dropped_messages == 2
    assert [t.text for t in trimmed.request.turns] == [
        "And the second one?",
        "A dog.",
        "Which animal is bigger?",
    ]
    assert trimmed.prompt_tokens + 100 <= budget
    assert len(conv.messages) == 5

    shown = to_chatbot(
        finish_answer(start_answer(conv), Finished("stop", 1, 1), dropped_messages=2), media_path
    )
    assert "2 earlier messages were left out" in shown[-1]["content"]


def test_a_current_message_too_big_for_the_budget_is_refused(tokenizer: Tokenizer) -> None:
    conv = add_user_message(new_conversation(OWNER), "Look.", (IMAGE,))
    with pytest.raises(ContextBudgetExceeded, match="more than the context limit of 1000"):
        to_request(conv, tokenizer, media_path, context_budget=1000)


def test_request_settings_cap_and_image_modes(tokenizer: Tokenizer) -> None:
    settings = ChatSettings(params=GenerationParams(max_new_tokens=5000), hd_num_single=12, hd_num_multi=3)
    conv = add_user_message(new_conversation(OWNER, settings), "q", (IMAGE, IMAGE2))
    request = to_request(conv, tokenizer, media_path, context_budget=16384, max_new_tokens_cap=256).request
    assert request.params.max_new_tokens == 256
    assert (request.hd_num_single, request.hd_num_multi) == (12, 3)
    single = replace(conv, settings=replace(settings, image_mode="single", use_meta=False))
    request = to_request(single, tokenizer, media_path, context_budget=16384).request
    assert (request.hd_num_single, request.hd_num_multi) == (12, 12)
    assert request.meta_instruction is None
    multi = replace(conv, settings=replace(settings, image_mode="multi"))
    request = to_request(multi, tokenizer, media_path, context_budget=16384).request
    assert (request.hd_num_single, request.hd_num_multi) == (3, 3)


def test_the_answer_being_streamed_is_not_part_of_the_request(tokenizer: Tokenizer) -> None:
    conv = start_answer(add_user_message(new_conversation(OWNER), "q"))
    assert [t.role for t in to_request(conv, tokenizer, media_path, context_budget=4096).request.turns] == [
        "user"
    ]
    with pytest.raises(ConversationError, match="no question"):
        to_request(answered(new_conversation(OWNER), "q", "a"), tokenizer, media_path, context_budget=4096)


def test_a_video_reaches_the_engine_as_its_strip(tokenizer: Tokenizer) -> None:
    conv = add_user_message(new_conversation(OWNER), "Describe this video.", (VIDEO,))
    (ref,) = to_request(conv, tokenizer, media_path, context_budget=16384).request.turns[0].images
    assert (ref.key, ref.path, ref.width, ref.height, ref.is_video) == (
        VIDEO.strip_key,
        media_path(VIDEO.strip_key),
        560,
        3920,
        True,
    )


def test_image_ref_is_the_image_or_the_videos_strip() -> None:
    ref = image_ref(IMAGE, media_path)
    assert (ref.key, ref.path, ref.width, ref.height, ref.is_video) == (
        IMAGE.key,
        media_path(IMAGE.key),
        448,
        448,
        False,
    )
    assert image_ref(VIDEO, media_path).key == VIDEO.strip_key
    with pytest.raises(ConversationError, match="no frame strip; attach it again"):
        image_ref(replace(VIDEO, strip_key=None), media_path)


def file_part(content: list, index: int) -> dict:
    """The file of a media part (an image or video component part, captioned with its label)."""
    part = content[index]
    assert part["type"] == "component"
    assert part["component"] in ("image", "video")
    return {k: v for k, v in part["value"].items() if k != "meta"}


def test_chatbot_has_one_message_per_conversation_message_with_media_inline() -> None:
    conv = answered(new_conversation(OWNER), "two pets", "Yes.", (IMAGE, IMAGE2))
    conv = add_user_message(conv, "", (VIDEO,))
    conv = start_answer(conv)
    shown = to_chatbot(conv, media_path)
    assert [m["role"] for m in shown] == ["user", "assistant", "user", "assistant"]
    first = shown[0]["content"]
    assert file_part(first, 0) == {
        "path": media_path(IMAGE.key),
        "mime_type": "image/png",
        "orig_name": "cat.png",
    }
    assert file_part(first, 1)["path"] == media_path(IMAGE2.key)
    assert first[2] == "two pets"
    assert shown[1]["content"] == "Yes."
    video = shown[2]["content"]
    assert len(video) == 1
    assert file_part(video, 0)["path"] == media_path(VIDEO.key)
    assert file_part(video, 0)["mime_type"] == "video/mp4"
    assert shown[3]["content"] == ""


def test_a_video_browsers_cannot_play_is_shown_as_its_poster() -> None:
    conv = add_user_message(new_conversation(OWNER), "what happens?", (MKV,))
    part = to_chatbot(conv, media_path)[0]["content"][0]
    assert part["component"] == "image"
    assert file_part([part], 0)["path"] == media_path(MKV.poster_key)
    assert file_part([part], 0)["mime_type"].startswith("image/")
    assert part["props"]["label"] == "clip.mkv (video; this format plays only after download)"


def test_chatbot_shows_errors_and_stops() -> None:
    conv = fail_answer(
        append_answer(start_answer(add_user_message(new_conversation(OWNER), "q")), "par"), "Boom."
    )
    assert to_chatbot(conv, media_path)[-1]["content"] == "par\n\n**Error:** Boom."
    stopped = start_answer(add_user_message(new_conversation(OWNER), "q"))
    stopped = finish_answer(stopped, Finished("cancelled", 1, 0))
    assert to_chatbot(stopped, media_path)[-1]["content"] == "*(stopped)*"


def test_new_conversation_defaults() -> None:
    conv = new_conversation(OWNER)
    assert conv.title == DEFAULT_TITLE
    assert conv.messages == ()
    assert conv.owner == OWNER
    assert conv.id != new_conversation(OWNER).id
