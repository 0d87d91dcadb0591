"""Reading the composer's answers back, tolerantly, with deterministic fallbacks.

An engine that cannot prefill emulates it and may repeat the prefill; a small or random model writes
garbage. Every parser therefore accepts an answer with or without its prefill, ignores what it cannot read,
and falls back to something the next step can use, so that the pipeline always finishes: the requested number
of slots, a caption taken from the paragraph, candidate A.
"""

from __future__ import annotations

import re
import unicodedata

from ixc_app.ixc.compose import CAPTION_PREFILL, SELECTION_PREFILL, SLOT_PREFILL

MAX_AUTO_IMAGES = 10
FALLBACK_CAPTION_CHARS = 40
_SEG = re.compile(r"<?\s*seg\s*(\d+)\s*>?", re.IGNORECASE)
_CLOSING_QUOTES = ('"', "”")
_LEADING_NOISE = " \t\n:：\"'“”‘’「」『』(（[【.。,，-"


def without_prefill(answer: str, prefill: str) -> str:
    """The answer after its prefill, whether or not the engine repeated the prefill."""
    stripped = answer.lstrip()
    return stripped[len(prefill) :] if prefill and stripped.startswith(prefill) else answer


def auto_image_count(n_paragraphs: int) -> int:
    """How many images an automatic slot answer that names none gets: one per three paragraphs, 1 to 10."""
    return max(1, min(MAX_AUTO_IMAGES, n_paragraphs // 3))


def parse_slots(answer: str, n_paragraphs: int, wanted: int | None) -> tuple[int, ...]:
    """The paragraphs to put an image after, ascending, from the `<Seg k>` markers of a slot answer.

    Duplicates and out-of-range markers are dropped. `wanted` None (automatic) keeps what the model named, or
    `auto_image_count` if it named none; a number is met exactly (capped at the paragraph count): extra
    markers are dropped and missing slots are spread evenly over the paragraphs not taken.
    """
    if n_paragraphs <= 0:
        return ()
    found: list[int] = []
    for match in _SEG.finditer(without_prefill(answer, SLOT_PREFILL)):
        k = int(match.group(1))
        if k < n_paragraphs and k not in found:
            found.append(k)
    target = (len(found) or auto_image_count(n_paragraphs)) if wanted is None else wanted
    target = max(0, min(target, n_paragraphs))
    chosen = found[:target]
    for k in spread(n_paragraphs, target):
        if len(chosen) >= target:
            break
        if k not in chosen:
            chosen.append(k)
    free = (k for k in range(n_paragraphs) if k not in chosen)
    while len(chosen) < target:
        chosen.append(next(free))
    return tuple(sorted(chosen))


def spread(n_paragraphs: int, count: int) -> tuple[int, ...]:
    """`count` paragraph indices spread evenly over the article, none after the last paragraph twice."""
    if count <= 0:
        return ()
    return tuple(sorted({min(n_paragraphs - 1, (i + 1) * n_paragraphs // (count + 1)) for i in range(count)}))


def parse_caption(answer: str, paragraph: str) -> str:
    """The caption: the answer's text before the closing quote (without the prefill if repeated), or, when
    that is empty, the start of the paragraph it illustrates."""
    text = without_prefill(answer, CAPTION_PREFILL)
    cut = min((i for i in (text.find(q) for q in _CLOSING_QUOTES) if i >= 0), default=len(text))
    caption = " ".join(text[:cut].split()).strip(_LEADING_NOISE)
    return caption or fallback_caption(paragraph)


def fallback_caption(paragraph: str) -> str:
    return " ".join(paragraph.split())[:FALLBACK_CAPTION_CHARS]


def parse_choice(answer: str, n_candidates: int) -> int:
    """The chosen candidate's index from a selection answer (`B`, `：B.`, `Ｃ`, the prefill again), else 0."""
    text = unicodedata.normalize("NFKC", without_prefill(answer, SELECTION_PREFILL)).lstrip(_LEADING_NOISE)
    if text:
        index = ord(text[0].upper()) - ord("A")
        if 0 <= index < n_candidates:
            return index
    return 0
