"""Stop strings: the answer ends before the first one, which is never shown, even when split across pieces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import native_engine
from hypothesis import given
from hypothesis import strategies as st

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request
from ixc_app.engines.native import NativeModel
from ixc_app.engines.stops import StopScanner
from ixc_app.ixc.prompt import Turn


def scan(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    shown = "".join(scanner.push(p) for p in pieces) + scanner.flush()
    return shown, scanner.stopped


def test_text_before_the_first_stop_string_is_shown_and_the_stop_is_not() -> None:
    assert scan(['标题是"春天', '的公园"', "，然后"], ['"']) == ("标题是", True)
    assert scan(["The caption", " is done"], ["</end>"]) == ("The caption is done", False)


def test_a_stop_string_split_over_pieces_is_caught_and_a_false_start_is_released() -> None:
    assert scan(["abc<", "/e", "nd>tail"], ["</end>"]) == ("abc", True)
    assert scan(["abc</e", "xyz"], ["</end>"]) == ("abc</exyz", False)
    assert scan(["x", "</e"], ["</end>"]) == ("x</e", False)


def test_the_earliest_of_several_stop_strings_wins() -> None:
    assert scan(["one. two! three"], ["!", "."]) == ("one", True)


@given(st.text(max_size=40), st.lists(st.integers(1, 6), max_size=10), st.text(min_size=1, max_size=4))
def test_any_split_gives_what_one_piece_gives(text: str, cuts: list[int], stop: str) -> None:
    pieces, rest = [], text
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    whole = text[: text.find(stop)] if stop in text else text
    assert scan(pieces, [stop]) == (whole, stop in text)


GREEDY = GenerationParams(max_new_tokens=24, do_sample=False, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> NativeModel:
    return NativeModel.from_pretrained(tiny_checkpoint)


def answer(model: NativeModel, request: Request) -> tuple[str, Finished]:
    items = list(native_engine(model).stream(request))
    finished = items[-1]
    assert isinstance(finished, Finished)
    return "".join(i.text for i in items if isinstance(i, Delta)), finished


def test_the_native_engine_ends_its_answer_at_a_stop_string(model: NativeModel) -> None:
    request = Request(turns=(Turn("user", "Write a caption for a picture of the sea."),), params=GREEDY)
    full, finished = answer(model, request)
    assert finished.finish_reason == "length" and len(full) > 6
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut, stopped = answer(model, dataclasses.replace(request, stop=(stop,)))
    assert cut == full[: full.find(stop)]
    assert stopped.finish_reason == "stop"
    assert stopped.generated_tokens < finished.generated_tokens
