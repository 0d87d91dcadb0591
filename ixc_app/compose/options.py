"""The composer's inputs from a form or an API call, checked, with a sentence naming what is wrong.

API clients can send anything, so every value is range-checked here rather than trusted to the widgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ixc_app.compose.article import STEPS, Step, WritingSettings
from ixc_app.compose.errors import ComposeRejected
from ixc_app.compose.strings import say

MAX_IMAGES = 10
MAX_BEAMS = 6
MAX_TARGET_LENGTH = 20_000
MAX_REPETITION_PENALTY = 2.0
AUTO = "auto"


@dataclass(frozen=True)
class ComposeOptions:
    """What a composition is asked for besides its instruction and reference images."""

    n_images: int | None
    target_length: int | None
    settings: WritingSettings


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ComposeRejected(say("error.setting", name=name, low=low, high=high, value=value)) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ComposeRejected(say("error.setting", name=name, low=low, high=high, value=value))
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    number = _number(name, value, low, high)
    if number != int(number):
        raise ComposeRejected(say("error.setting", name=name, low=low, high=high, value=value))
    return int(number)


def n_images(value: Any) -> int | None:
    """`auto` (or empty) lets the model decide; otherwise a whole number from 1 to 10."""
    if value is None or str(value).strip().lower() in ("", AUTO):
        return None
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_IMAGES:
        raise ComposeRejected(say("error.n_images", value=value))
    return int(text)


def target_length(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ComposeRejected(say("error.target_length", value=value)) from None
    if not (math.isfinite(number) and number == int(number) and 0 <= number <= MAX_TARGET_LENGTH):
        raise ComposeRejected(say("error.target_length", value=value))
    return int(number) or None


def writing_settings(
    defaults: WritingSettings,
    *,
    max_tokens_cap: int,
    sampling: Any = None,
    num_beams: Any = None,
    repetition_penalty: Any = None,
    max_new_tokens: Any = None,
    seed: Any = None,
    use_meta: Any = None,
    plan_first: Any = None,
    llm_only: Any = None,
) -> WritingSettings:
    """`defaults` with the given values checked and applied (None keeps the default)."""
    d = defaults
    seed_value = d.seed if seed is None else _integer("Seed", seed, -1, 2**63 - 1)
    return WritingSettings(
        sampling=d.sampling if sampling is None else bool(sampling),
        num_beams=d.num_beams if num_beams is None else _integer("Beams", num_beams, 1, MAX_BEAMS),
        repetition_penalty=d.repetition_penalty
        if repetition_penalty is None
        else _number("Repetition penalty", repetition_penalty, 1.0, MAX_REPETITION_PENALTY),
        max_new_tokens=min(d.max_new_tokens, max_tokens_cap)
        if max_new_tokens is None
        else _integer("Max new tokens", max_new_tokens, 1, max_tokens_cap),
        seed=None if seed_value is None or seed_value < 0 else seed_value,
        use_meta=d.use_meta if use_meta is None else bool(use_meta),
        plan_first=d.plan_first if plan_first is None else bool(plan_first),
        llm_only=d.llm_only if llm_only is None else bool(llm_only),
        hd_num_single=d.hd_num_single,
        hd_num_multi=d.hd_num_multi,
    )


def step(value: Any) -> Step:
    if value not in STEPS:
        raise ComposeRejected(say("error.step", value=value, steps=", ".join(STEPS)))
    return value
