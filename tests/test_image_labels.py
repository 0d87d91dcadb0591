"""Image numbers: the chat labels each image with the number the model reads for it, across turns and after
the context budget leaves old turns out (one function, `ixc.template.image_numbers`, for both)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from app_harness import write_mp4, write_png
from conftest import prompt_of

from ixc_app.chat import (
    Conversation,
    MediaItem,
    add_user_message,
    append_answer,
    finish_answer,
    ingest_upload,
    new_conversation,
    start_answer,
    to_chatbot,
    to_request,
)
from ixc_app.chat.request import image_numbers as chat_image_numbers
from ixc_app.config import Limits
from ixc_app.engines.base import Finished, GenerationParams
from ixc_app.engines.remote.messages import chat_messages
from ixc_app.engines.wire import IMAGE_TOKEN
from ixc_app.ixc.prompt import IMAGE_PLACEHOLDER, ImageRef, Turn
from ixc_app.ixc.template import build_prompt, image_numbers
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import MediaStore

OWNER = "owner-token-aaaaaaaaaaaa"
S, E = "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"  # turn start and end


def item(name: str) -> MediaItem:
    return MediaItem(key=name * 32, kind="image", name=f"{name}.png", mime="image/png", width=448, height=448)


A, B, C, D = item("a"), item("b"), item("c"), item("d")
CLIP = MediaItem(
    key="e" * 64,
    kind="video",
    name="clip.mp4",
    mime="video/mp4",
    width=1280,
    height=720,
    strip_key="f" * 64,
    strip_width=560,
    strip_height=1120,
)


def ref(key: str) -> ImageRef:
    return ImageRef(key=key, path=f"/media/{key}", width=448, height=448)


def media_path(key: str) -> str:
    return f"/media/{key}"


@pytest.fixture(scope="module")
def tokenizer(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


def answered(conv: Conversation, question: str, media: tuple[MediaItem, ...]) -> Conversation:
    conv = append_answer(start_answer(add_user_message(conv, question, media)), "Noted.")
    return finish_answer(conv, Finished("stop", prompt_tokens=10, generated_tokens=1))


def three_turns() -> Conversation:
    """a.png and b.png, then c.png, then d.png with the question."""
    conv = answered(new_conversation(OWNER), "Compare them", (A, B))
    conv = answered(conv, "And this", (C,))
    return add_user_message(conv, "Which is the odd one?", (D,))


def labels(conv: Conversation) -> list[list[str]]:
    """The caption of every media part, message by message, as the Chatbot gets them."""
    shown = to_chatbot(conv, media_path)
    return [
        [part["props"]["label"] for part in m["content"] if isinstance(part, dict)]
        for m in shown
        if m["role"] == "user"
    ]


def announced(text: str) -> list[list[int]]:
    """The numbers a prompt announces, user turn by user turn."""
    turns = text.split("[UNUSED_TOKEN_146]user\n")[1:]
    return [
        [int(n) for n in re.findall(r"Image(\d+) ", turn.split("[UNUSED_TOKEN_145]")[0])] for turn in turns
    ]


# The numbering rule


def test_images_are_numbered_across_turns_from_one() -> None:
    turns = [
        Turn("user", "Compare", (ref("a"), ref("b"))),
        Turn("assistant", "ok"),
        Turn("user", "More", (ref("c"),)),
        Turn("assistant", "ok"),
        Turn("user", "No image"),
    ]
    assert image_numbers(turns) == ((1, 2), (), (3,), (), ())


def test_the_only_image_of_a_conversation_has_no_number() -> None:
    turns = [Turn("user", "Hi"), Turn("assistant", "Hello"), Turn("user", "Look", (ref("a"),))]
    assert image_numbers(turns) == ((), (), (None,))
    # ... unless earlier images were left out: then it is not the only one.
    assert image_numbers(turns, first=3) == ((), (), (3,))


def test_images_a_turn_places_itself_have_no_number_but_count() -> None:
    turns = [
        Turn("user", f"Here {IMAGE_PLACEHOLDER} is one", (ref("a"),)),
        Turn("assistant", "ok"),
        Turn("user", "Two more", (ref("b"), ref("c"))),
    ]
    assert image_numbers(turns) == ((None,), (), (2, 3))


@pytest.mark.parametrize("cut", [0, 2, 4, 6])
def test_numbers_of_the_kept_turns_are_the_conversations(cut: int) -> None:
    turns = [
        Turn("user", "one", (ref("a"),)),
        Turn("assistant", "ok"),
        Turn("user", "two", (ref("b"), ref("c"))),
        Turn("assistant", "ok"),
        Turn("user", "none"),
        Turn("assistant", "ok"),
        Turn("user", "three", (ref("d"),)),
    ]
    before = sum(len(turn.images) for turn in turns[:cut])
    assert image_numbers(turns[cut:], first=1 + before) == image_numbers(turns)[cut:]


def test_the_prompt_announces_exactly_these_numbers(tokenizer: Tokenizer) -> None:
    turns = [
        Turn("user", "one", (ref("a"),)),
        Turn("assistant", "ok"),
        Turn("user", "two", (ref("b"), ref("c"))),
        Turn("assistant", "ok"),
        Turn("user", "three", (ref("d"),)),
    ]
    for cut, first in ((0, 1), (2, 2), (4, 4)):
        kept = turns[cut:]
        prompt = build_prompt(kept, tokenizer, first_image=first)
        numbers = image_numbers(kept, first=first)
        assert announced(prompt.text) == [
            list(n) for n, t in zip(numbers, kept, strict=True) if t.role == "user"
        ]
    # The last image alone, after a cut: numbered in its turn, not moved first after BOS.
    assert build_prompt(turns[4:], tokenizer, first_image=4).text.startswith(
        "[UNUSED_TOKEN_146]user\nImage4 "
    )
    assert build_prompt(turns[4:], tokenizer).text.startswith(IMAGE_PLACEHOLDER)


# The chat: labels and the request agree


def test_each_image_is_labelled_with_its_number_across_turns() -> None:
    assert labels(three_turns()) == [
        ["Image 1 · a.png", "Image 2 · b.png"],
        ["Image 3 · c.png"],
        ["Image 4 · d.png"],
    ]
    # The label is the media part's caption, never a text part the edit box would show.
    first = to_chatbot(three_turns(), media_path)[0]["content"]
    assert [part for part in first if isinstance(part, str)] == ["Compare them"]
    assert first[0]["props"]["alt_text"] == "Image 1 · a.png"


def test_a_single_image_conversation_labels_it_by_name_until_a_second_image_comes() -> None:
    conv = add_user_message(new_conversation(OWNER), "Describe it", (A,))
    assert labels(conv) == [["a.png"]]
    conv = add_user_message(finish_answer(start_answer(conv), Finished("stop", 1, 1)), "And this", (B,))
    assert labels(conv) == [["Image 1 · a.png"], ["Image 2 · b.png"]]


def test_videos_are_numbered_like_images_even_without_their_strip() -> None:
    conv = add_user_message(new_conversation(OWNER), "Both", (A, CLIP))
    assert labels(conv) == [["Image 1 · a.png", "Image 2 · clip.mp4"]]
    assert to_chatbot(conv, media_path)[0]["content"][1]["component"] == "video"
    broken = add_user_message(new_conversation(OWNER), "Both", (A, replace(CLIP, strip_key=None)))
    assert labels(broken) == labels(conv)


def test_the_request_announces_the_labels_numbers(tokenizer: Tokenizer) -> None:
    conv = three_turns()
    prepared = to_request(conv, tokenizer, media_path, context_budget=16384)
    assert prepared.dropped_messages == 0
    assert announced(prompt_of(prepared.request, tokenizer).text) == [[1, 2], [3], [4]]
    assert chat_image_numbers(conv.messages) == ((1, 2), (), (3,), (), (4,))


def test_after_a_budget_trim_the_model_reads_the_numbers_the_labels_show(tokenizer: Tokenizer) -> None:
    conv = three_turns()
    conv = replace(conv, settings=replace(conv.settings, params=GenerationParams(max_new_tokens=100)))
    full = to_request(conv, tokenizer, media_path, context_budget=100_000)
    trimmed = to_request(conv, tokenizer, media_path, context_budget=full.prompt_tokens + 100 - 1)
    assert trimmed.dropped_messages == 2
    assert trimmed.request.first_image == 3

    kept_labels = labels(conv)[1:]
    expected = [[int(re.match(r"Image (\d+) ", text)[1]) for text in turn] for turn in kept_labels]
    assert expected == [[3], [4]]
    # The native engine's prompt and what the remote engine sends both say Image3 and Image4.
    assert announced(prompt_of(trimmed.request, tokenizer).text) == expected
    (user,) = [m for m in chat_messages(trimmed.request, lambda segment: "data:,") if m["role"] == "user"]
    remote = user["content"][0]["text"]
    assert re.findall(r"Image(\d+) " + re.escape(IMAGE_TOKEN), remote) == ["3", "4"]
    assert "Image1" not in remote


def test_the_same_file_uploaded_under_another_name_is_captioned_with_that_name(tmp_path: Path) -> None:
    """The store keeps identical content once, under its first name; each upload still shows its own."""
    media = MediaStore(tmp_path / "media")
    first = write_png(tmp_path / "holiday.png", (200, 40, 40))
    again = tmp_path / "a.png"
    again.write_bytes(first.read_bytes())
    items = [ingest_upload(media, path, Limits()) for path in (first, again)]
    assert items[0].key == items[1].key
    assert [item.name for item in items] == ["holiday.png", "a.png"]
    clip = write_mp4(tmp_path / "party.mp4")
    ingest_upload(media, clip, Limits())
    renamed = ingest_upload(media, clip, Limits(), name="clip.mp4")
    assert (renamed.kind, renamed.name) == ("video", "clip.mp4")
    conv = add_user_message(new_conversation(OWNER), "Same?", (items[1], renamed))
    assert labels(conv) == [["Image 1 · a.png", "Image 2 · clip.mp4"]]
