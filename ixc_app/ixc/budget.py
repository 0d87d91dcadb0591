"""The token budget: what each turn and image of a conversation costs, and which old turns to drop to fit.

The chat calls this before an engine so a long conversation loses its oldest exchanges instead of failing or
being cut mid-prompt (the reference truncates the embeddings, which can cut the current question). Dropping
turns can change the prompt itself (one image left gets the single-image crop budget), so every candidate is
laid out by the template and the chosen one is built for real. The images kept keep their numbers in the
conversation (`template.image_numbers`): the model reads the names the chat shows and the user's own words
("compare Image 2 and Image 5") still mean the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ixc_app.ixc.prompt import ImageSegment, Prompt, Turn
from ixc_app.ixc.template import Block, build_prompt, layout, text_runs
from ixc_app.ixc.tokenizer import Tokenizer


class ContextBudgetExceeded(ValueError):
    """The current message alone, with the answer's reserved tokens, does not fit the context."""

    def __init__(self, *, needed: int, image_tokens: int, reserved: int, limit: int) -> None:
        self.needed = needed
        self.image_tokens = image_tokens
        self.reserved = reserved
        self.limit = limit
        super().__init__(
            f"This message needs {needed} tokens ({image_tokens} of them for images) plus {reserved} "
            f"reserved for the answer, more than the context limit of {limit}: attach fewer images, lower "
            "the image detail (hd_num), shorten the text or lower the maximum answer length."
        )


@dataclass(frozen=True)
class TurnCost:
    """Embeddings one turn adds to the prompt: its text (with markers) and each of its images."""

    text_tokens: int
    image_tokens: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.text_tokens + sum(self.image_tokens)


@dataclass(frozen=True)
class BudgetPlan:
    """The turns kept (oldest `dropped` removed), their prompt, and the costs of the conversation as given.

    `costs` has one entry per input turn and `overhead_tokens` counts BOS, the system turn, the answer header
    and the prefill, both as they stand in the untrimmed prompt. `first_image` is the number the kept turns'
    first image has in the whole conversation, which the prompt was built with (1 when nothing with images
    was dropped); a request built from `turns` must carry it.
    """

    turns: tuple[Turn, ...]
    dropped: int
    prompt: Prompt
    costs: tuple[TurnCost, ...]
    overhead_tokens: int
    first_image: int = 1


def fit_to_context(
    turns: Sequence[Turn],
    tokenizer: Tokenizer,
    *,
    context_limit: int,
    max_new_tokens: int,
    meta_instruction: str | None = None,
    prefill: str = "",
    hd_num_single: int = 24,
    hd_num_multi: int = 6,
    trim_to: float = 1.0,
) -> BudgetPlan:
    """Drop the oldest user+assistant pairs so the prompt plus `max_new_tokens` fits the context.

    With `trim_to` 1 the fewest pairs go. Below 1, trimming has hysteresis, so that a long conversation keeps
    the same first turn (and an engine's cached prompt prefix stays valid) for several turns instead of losing
    one pair, and the whole prefix, every turn: the conversation is replayed message by message, and whenever
    it outgrows the context, pairs are dropped until the prompt fits within `trim_to` of the room; that cut
    stays until the next overflow. The replay depends on the turns alone, so every request of a conversation
    finds the cut a trimmer with memory would have kept.
    """
    settings = {
        "meta_instruction": meta_instruction,
        "prefill": prefill,
        "hd_num_single": hd_num_single,
        "hd_num_multi": hd_num_multi,
    }
    lay = partial(layout, **settings)
    build = partial(build_prompt, tokenizer=tokenizer, **settings)
    count = _cached_counter(tokenizer)
    costs, overhead = _costs(lay(turns), len(turns), count)
    available = context_limit - max_new_tokens
    first = _replayed_cut(costs, overhead, available, trim_to) if trim_to < 1 else 0
    for dropped in range(first, len(turns), 2):
        kept = tuple(turns[dropped:])
        first_image = _first_image(turns, dropped)
        kept_costs, kept_overhead = _costs(lay(kept, first_image=first_image), len(kept), count)
        if kept_overhead + sum(cost.total for cost in kept_costs) > available:
            continue
        prompt = build(kept, first_image=first_image)
        if prompt.num_tokens <= available:
            return BudgetPlan(kept, dropped, prompt, costs, overhead, first_image)
    alone = build(turns[-1:], first_image=_first_image(turns, len(turns) - 1))
    raise ContextBudgetExceeded(
        needed=alone.num_tokens,
        image_tokens=sum(image.num_tokens for image in alone.images),
        reserved=max_new_tokens,
        limit=context_limit,
    )


def _first_image(turns: Sequence[Turn], dropped: int) -> int:
    """The number of the first image after the `dropped` oldest turns."""
    return 1 + sum(len(turn.images) for turn in turns[:dropped])


def _replayed_cut(costs: Sequence[TurnCost], overhead: int, available: int, trim_to: float) -> int:
    """The pairs a trimmer with hysteresis has dropped by the last message (costs from the whole layout)."""
    dropped = 0
    for end in range(1, len(costs) + 1, 2):
        if overhead + sum(cost.total for cost in costs[dropped:end]) <= available:
            continue
        while dropped + 2 < end and overhead + sum(c.total for c in costs[dropped:end]) > trim_to * available:
            dropped += 2
    return dropped


def _costs(
    blocks: Sequence[Block], n_turns: int, count: Callable[[str], int]
) -> tuple[tuple[TurnCost, ...], int]:
    """Token counts per turn from the layout, block by block.

    Blocks meet at turn markers, which SentencePiece never merges with their neighbours, and images cut the
    text anyway, so the blocks' counts add up to the prompt's (the one BOS goes to the overhead).
    """
    text = [0] * n_turns
    images: list[list[int]] = [[] for _ in range(n_turns)]
    overhead = 1
    for block in blocks:
        block_text = sum(count(run) for run in text_runs(block.parts) if isinstance(run, str))
        if block.turn is None:
            overhead += block_text
            continue
        text[block.turn] += block_text
        images[block.turn].extend(p.num_tokens for p in block.parts if isinstance(p, ImageSegment))
    costs = tuple(TurnCost(t, tuple(i)) for t, i in zip(text, images, strict=True))
    return costs, overhead


def _cached_counter(tokenizer: Tokenizer) -> Callable[[str], int]:
    """Token count of a text run, remembered: trimming lays out the same turns once per candidate."""
    cache: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in cache:
            cache[text] = len(tokenizer.encode(text, bos=False))
        return cache[text]

    return count
