"""Between the settings panel (and the `/chat` API's parameters) and `ChatSettings`, checked on the way in.

API clients can send any number, so every value is range-checked here with a sentence naming the setting,
rather than trusting the sliders' ranges.
"""

from __future__ import annotations

import math
from typing import Any

from ixc_app.chat import ChatSettings
from ixc_app.config import Limits
from ixc_app.engines.base import GenerationParams
from ixc_app.ui.service import InputRejected

IMAGE_MODE_VALUES = ("auto", "single", "multi")
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 200
MAX_REPETITION_PENALTY = 2.0
MAX_HD_NUM = 40


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputRejected(f"{name} must be a number between {low:g} and {high:g}.") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise InputRejected(f"{name} must be between {low:g} and {high:g}, not {value}.")
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    number = _number(name, value, low, high)
    if number != int(number):
        raise InputRejected(f"{name} must be a whole number, not {value}.")
    return int(number)


def settings_from_form(values: list[Any], limits: Limits) -> ChatSettings:
    """`ChatSettings` from the panel's values, in `SettingsPanel.components` order."""
    (max_new, temperature, top_p, top_k, penalty, seed, hd_single, hd_multi, image_mode, use_meta) = values
    if image_mode not in IMAGE_MODE_VALUES:
        raise InputRejected(
            f"Image detail must be one of {', '.join(IMAGE_MODE_VALUES)}, not {image_mode!r}."
        )
    seed_value = _integer("Seed", -1 if seed is None else seed, -1, 2**63 - 1)
    params = GenerationParams(
        max_new_tokens=_integer("Max new tokens", max_new, 1, limits.max_new_tokens),
        temperature=_number("Temperature", temperature, 0.0, MAX_TEMPERATURE),
        top_p=_number("Top-p", top_p, 0.01, 1.0),
        top_k=_integer("Top-k", top_k, 0, MAX_TOP_K),
        repetition_penalty=_number("Repetition penalty", penalty, 1.0, MAX_REPETITION_PENALTY),
        seed=None if seed_value < 0 else seed_value,
    )
    return ChatSettings(
        params=params,
        hd_num_single=_integer("Crops for full detail", hd_single, 1, MAX_HD_NUM),
        hd_num_multi=_integer("Crops for less detail", hd_multi, 1, MAX_HD_NUM),
        image_mode=image_mode,
        use_meta=bool(use_meta),
    )


def form_values(settings: ChatSettings) -> list[Any]:
    """The panel's values for `settings`, in `SettingsPanel.components` order."""
    p = settings.params
    return [
        p.max_new_tokens,
        p.temperature,
        p.top_p,
        p.top_k,
        p.repetition_penalty,
        -1 if p.seed is None else p.seed,
        settings.hd_num_single,
        settings.hd_num_multi,
        settings.image_mode,
        settings.use_meta,
    ]
