"""Attached text files are read into the message as quoted text with their name, within the text limit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ixc_app.chat.ingest import with_text_files
from ixc_app.media import MediaRejected


def test_a_text_file_is_quoted_with_its_name_before_what_was_typed(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Plan\nuse ```code``` here\n", encoding="utf-8")
    text, media = with_text_files("Summarise it.", [str(notes), "/uploads/photo.png"], 1000)
    assert text == "notes.md:\n````\n# Plan\nuse ```code``` here\n````\n\nSummarise it."
    assert media == ("/uploads/photo.png",)


def test_without_text_files_the_message_is_unchanged() -> None:
    assert with_text_files("Hello", ["/uploads/a.jpg"], 10) == ("Hello", ("/uploads/a.jpg",))


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (b"\xff\xfe\x00bad", "'data.csv' is not UTF-8 text"),
        (b"a,b\n" * 40, "the message is 185 characters long, over the limit of 100"),
        (b"x" * 401, "'data.csv' is 401 bytes, more text than a message may hold (100 characters)"),
    ],
)
def test_a_text_file_the_message_cannot_hold_is_refused_with_a_sentence(
    tmp_path: Path, content: bytes, sentence: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(content)
    with pytest.raises(MediaRejected, match=re.escape(sentence)):
        with_text_files("Total?", [str(data)], 100)
