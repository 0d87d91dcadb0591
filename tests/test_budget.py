"""The token budget: per-turn costs and trimming of the oldest exchanges to fit the context."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ixc_app.ixc.budget import BudgetPlan, ContextBudgetExceeded, TurnCost, fit_to_context
from ixc_app.ixc.prompt import ImageRef, Turn
from ixc_app.ixc.template import CHAT_META, build_prompt
from ixc_app.ixc.tokenizer import TURN_START, Tokenizer


@pytest.fixture(scope="module")
def tok(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


def image(key: str, width: int, height: int, is_video: bool = False) -> ImageRef:
    return ImageRef(key=key, path=f"/media/{key}.png", width=width, height=height, is_video=is_video)


def chat(pairs: int, words: int = 50) -> list[Turn]:
    turns: list[Turn] = []
    for n in range(pairs):
        turns += [
            Turn("user", f"Question {n}: " + "word " * words),
            Turn("assistant", f"Answer {n}. " * words),
        ]
    return [*turns, Turn("user", "The current question?")]


def fit(turns: list[Turn], tok: Tokenizer, limit: int, reserve: int = 100, **settings: object) -> BudgetPlan:
    return fit_to_context(turns, tok, context_limit=limit, max_new_tokens=reserve, **settings)


def test_costs_of_a_small_conversation(tok: Tokenizer) -> None:
    plan = fit([Turn("user", "Hello, who are you?")], tok, limit=16384)
    # BOS and "[UNUSED_TOKEN_146]assistant\n" are overhead; the turn is 11 ids with its markers
    assert plan.costs == (TurnCost(text_tokens=11, image_tokens=()),)
    assert plan.overhead_tokens == 5
    assert plan.prompt.num_tokens == 16


@pytest.mark.parametrize(
    ("turns", "settings"),
    [
        (chat(3), {}),
        (chat(2), {"meta_instruction": CHAT_META, "prefill": "The answer is"}),
        (
            [
                Turn("user", "Compare these.", (image("a", 800, 600), image("b", 1920, 1080))),
                Turn("assistant", "They differ."),
                Turn("user", "And this one?", (image("c", 448, 448),)),
            ],
            {"meta_instruction": CHAT_META},
        ),
        (
            [
                Turn("user", "Hi"),
                Turn("assistant", "Hello!"),
                Turn("user", "What is it?", (image("a", 1280, 720),)),
            ],
            {"meta_instruction": CHAT_META},
        ),
        (
            [
                Turn(
                    "user",
                    "候选图像包括: A.<ImageHere>\nB.<ImageHere>",
                    (image("a", 640, 480), image("b", 560, 3920, True)),
                )
            ],
            {},
        ),
    ],
)
def test_costs_add_up_to_the_prompt(tok: Tokenizer, turns: list[Turn], settings: dict[str, str]) -> None:
    plan = fit(turns, tok, limit=100_000, **settings)
    assert plan.dropped == 0
    assert plan.prompt == build_prompt(turns, tok, **settings)
    assert plan.overhead_tokens + sum(cost.total for cost in plan.costs) == plan.prompt.num_tokens
    assert [cost.image_tokens for cost in plan.costs] == [
        tuple(s.num_tokens for s in build_prompt(turns, tok, **settings).images if s.image in turn.images)
        for turn in turns
    ]


def test_image_costs_per_turn(tok: Tokenizer) -> None:
    turns = [
        Turn("user", "Compare these.", (image("a", 800, 600), image("b", 1920, 1080))),
        Turn("assistant", "They differ."),
        Turn("user", "And this one?", (image("c", 448, 448),)),
    ]
    plan = fit(turns, tok, limit=100_000)
    assert [cost.image_tokens for cost in plan.costs] == [(2061, 2861), (), (841,)]


def test_nothing_dropped_when_it_fits(tok: Tokenizer) -> None:
    turns = chat(3)
    full = build_prompt(turns, tok)
    plan = fit(turns, tok, limit=full.num_tokens + 100)
    assert (plan.dropped, plan.turns, plan.prompt) == (0, tuple(turns), full)


def test_drops_the_fewest_oldest_pairs(tok: Tokenizer) -> None:
    turns = chat(4)
    sizes = [build_prompt(turns[k:], tok).num_tokens for k in (0, 2, 4, 6, 8)]
    assert sizes == sorted(sizes, reverse=True)
    plan = fit(turns, tok, limit=sizes[2] + 100)
    assert plan.dropped == 4
    assert plan.turns == tuple(turns[4:])
    assert plan.prompt == build_prompt(turns[4:], tok)
    assert len(plan.costs) == len(turns)
    one_short = fit(turns, tok, limit=sizes[2] + 99)
    assert one_short.dropped == 6


def test_only_the_current_turn_is_left_at_worst(tok: Tokenizer) -> None:
    turns = chat(3)
    alone = build_prompt(turns[-1:], tok)
    plan = fit(turns, tok, limit=alone.num_tokens + 100)
    assert plan.turns == (turns[-1],)
    assert plan.dropped == 6


def test_the_prompt_is_rebuilt_after_trimming(tok: Tokenizer) -> None:
    """Two 1920x1080 images get 6 crops each; with the first dropped, the one left gets 24 and keeps its
    number: it is not the conversation's only image, so it does not move first."""
    first, second = image("a", 1920, 1080), image("b", 1920, 1080)
    turns = [Turn("user", "first", (first,)), Turn("assistant", "ok"), Turn("user", "second", (second,))]
    full = build_prompt(turns, tok)
    assert [s.num_tokens for s in full.images] == [2861, 2861]
    assert full.num_tokens == 5754
    plan = fit(turns, tok, limit=5500)
    assert (plan.dropped, plan.first_image) == (2, 2)
    assert plan.prompt.text.startswith(f"{TURN_START}user\nImage2 <ImageHere>; second")
    assert [(s.hd_num, s.num_tokens) for s in plan.prompt.images] == [(24, 5281)]
    assert plan.prompt.num_tokens == 5296
    assert plan.prompt == build_prompt(turns[2:], tok, first_image=2)
    assert plan.costs[2] == TurnCost(text_tokens=10, image_tokens=(2861,))


def test_trimming_can_make_it_worse_and_then_it_is_an_error(tok: Tokenizer) -> None:
    """Dropping the first image would give the second the single-image budget, which does not fit either."""
    first, second = image("a", 1920, 1080), image("b", 3840, 2160)
    turns = [Turn("user", "first", (first,)), Turn("assistant", "ok"), Turn("user", "second", (second,))]
    assert build_prompt(turns, tok).num_tokens == 5754
    with pytest.raises(ContextBudgetExceeded) as error:
        fit(turns, tok, limit=5800)
    assert (error.value.needed, error.value.image_tokens) == (10116, 10101)


def test_current_turn_too_big_is_a_clear_error(tok: Tokenizer) -> None:
    turns = [Turn("user", "Describe.", (image("x", 3840, 2160),))]
    with pytest.raises(ContextBudgetExceeded) as error:
        fit_to_context(turns, tok, context_limit=8192, max_new_tokens=1024)
    assert isinstance(error.value, ValueError)
    assert str(error.value) == (
        "This message needs 10114 tokens (10101 of them for images) plus 1024 reserved for the answer, "
        "more than the context limit of 8192: attach fewer images, lower the image detail (hd_num), "
        "shorten the text or lower the maximum answer length."
    )
    assert (error.value.needed, error.value.reserved, error.value.limit) == (10114, 1024, 8192)


def test_error_counts_the_current_turn_alone(tok: Tokenizer) -> None:
    turns = [*chat(2)[:-1], Turn("user", "Describe.", (image("x", 3840, 2160),))]
    with pytest.raises(ContextBudgetExceeded) as error:
        fit(turns, tok, limit=8192, reserve=1024)
    assert error.value.needed == build_prompt(turns[-1:], tok).num_tokens == 10114


def test_reserved_answer_tokens_count(tok: Tokenizer) -> None:
    turns = chat(1)
    size = build_prompt(turns, tok).num_tokens
    assert fit(turns, tok, limit=size + 500, reserve=500).dropped == 0
    assert fit(turns, tok, limit=size + 500, reserve=501).dropped == 2


class NonAdditiveFakeTokenizer(Tokenizer):
    """A fake whose text runs cost one more id than their turns counted apart, to defeat the cost estimate."""

    def encode(self, text: str, bos: bool) -> list[int]:
        extra = [0] if "\n[UNUSED_TOKEN_146]" in text else []
        return super().encode(text, bos) + extra


def test_the_chosen_prompt_is_checked_not_estimated(tok: Tokenizer) -> None:
    fake = NonAdditiveFakeTokenizer(tok._sp)
    turns = chat(2)
    plan = fit(turns, fake, limit=100_000)
    estimated = plan.overhead_tokens + sum(cost.total for cost in plan.costs)
    assert plan.prompt.num_tokens == estimated + 1
    trimmed = fit(turns, fake, limit=estimated + 100)
    assert trimmed.dropped == 2
    assert trimmed.prompt.num_tokens <= estimated


def growing(turns: list[Turn]) -> list[list[Turn]]:
    """The requests of a conversation as it grows: each user message with all turns before it."""
    return [turns[: end + 1] for end in range(0, len(turns), 2)]


def test_trimming_with_hysteresis_keeps_the_same_start_for_several_turns(tok: Tokenizer) -> None:
    turns = chat(24, words=30)
    limit = build_prompt(turns[:17], tok).num_tokens + 100
    plain = [fit(request, tok, limit=limit).dropped for request in growing(turns)]
    held = [fit(request, tok, limit=limit, trim_to=0.75) for request in growing(turns)]
    cuts = [plan.dropped for plan in held]
    assert cuts == sorted(cuts) and cuts[-1] > 0
    assert all(plan.prompt.num_tokens + 100 <= limit for plan in held)
    assert len(set(cuts)) <= len(set(plain)) // 2, "the cut moved nearly every turn"
    # Each cut leaves room to spare: the prompt right after it is within about 75% of what fits.
    for before, after, plan in zip(cuts, cuts[1:], held[1:], strict=False):
        if after != before:
            assert plan.prompt.num_tokens <= 0.75 * (limit - 100) + 200
    # Between two cuts, every request starts with the previous one's prompt (its answer and question added).
    for previous, plan in itertools.pairwise(held):
        if plan.dropped == previous.dropped:
            assert plan.turns[: len(previous.turns)] == previous.turns
    # The replay depends on the turns alone: asking again gives the same cut.
    assert fit(turns, tok, limit=limit, trim_to=0.75).dropped == cuts[-1]
    assert plain == sorted(plain) and len(set(plain)) > 5
