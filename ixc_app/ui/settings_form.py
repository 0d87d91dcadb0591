"""Between the settings panel (and the `/chat` API's parameters) and `ChatSettings`, checked on the way in.

The settings are keyed by name, and `SETTING_NAMES` is the one order there is: the panel's components, the
values Gradio passes to a handler, and the `/chat` API's optional parameters all follow it. API clients can
send any number, so every value is range-checked here with a sentence naming the setting, rather than
trusting the sliders' ranges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ixc_app.chat import ChatSettings
from ixc_app.chat.drafts import InputRejected
from ixc_app.chat.request import DEFAULT_META_INSTRUCTION, custom_meta_instruction
from ixc_app.config import Limits
from ixc_app.engines.base import GenerationParams
from ixc_app.i18n import tr

SETTING_NAMES = (
    "max_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "seed",
    "hd_num_single",
    "hd_num_multi",
    "image_mode",
    "use_meta",
    "meta_instruction",
)
IMAGE_MODE_VALUES = ("auto", "single", "multi")
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 200
MAX_REPETITION_PENALTY = 2.0
MAX_HD_NUM = 40


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputRejected(
            tr("{name} must be a number between {low:g} and {high:g}.", name=name, low=low, high=high)
        ) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise InputRejected(
            tr(
                "{name} must be between {low:g} and {high:g}, not {value}.",
                name=name,
                low=low,
                high=high,
                value=value,
            )
        )
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    number = _number(name, value, low, high)
    if number != int(number):
        raise InputRejected(tr("{name} must be a whole number, not {value}.", name=name, value=value))
    return int(number)


def by_name(values: Sequence[Any]) -> dict[str, Any]:
    """The values Gradio passes for the panel's components (in `SETTING_NAMES` order), keyed by name."""
    return dict(zip(SETTING_NAMES, values, strict=True))


def settings_from_form(values: Mapping[str, Any], limits: Limits) -> ChatSettings:
    """`ChatSettings` from the panel's values, keyed by `SETTING_NAMES`."""
    v = values
    image_mode = v["image_mode"]
    if image_mode not in IMAGE_MODE_VALUES:
        raise InputRejected(
            tr(
                "Image detail must be one of {choices}, not {value!r}.",
                choices=", ".join(IMAGE_MODE_VALUES),
                value=image_mode,
            )
        )
    seed_value = _integer(tr("Seed"), -1 if v["seed"] is None else v["seed"], -1, 2**63 - 1)
    params = GenerationParams(
        max_new_tokens=_integer(tr("Max new tokens"), v["max_new_tokens"], 1, limits.max_new_tokens),
        temperature=_number(tr("Temperature"), v["temperature"], 0.0, MAX_TEMPERATURE),
        top_p=_number("Top-p", v["top_p"], 0.01, 1.0),
        top_k=_integer("Top-k", v["top_k"], 0, MAX_TOP_K),
        repetition_penalty=_number(
            tr("Repetition penalty"), v["repetition_penalty"], 1.0, MAX_REPETITION_PENALTY
        ),
        seed=None if seed_value < 0 else seed_value,
    )
    return ChatSettings(
        params=params,
        hd_num_single=_integer(tr("Crops for full detail"), v["hd_num_single"], 1, MAX_HD_NUM),
        hd_num_multi=_integer(tr("Crops for less detail"), v["hd_num_multi"], 1, MAX_HD_NUM),
        image_mode=image_mode,
        use_meta=bool(v["use_meta"]),
        meta_instruction=_meta_instruction(v["meta_instruction"], limits),
    )


def _meta_instruction(value: Any, limits: Limits) -> str | None:
    text = "" if value is None else value
    if not isinstance(text, str):
        raise InputRejected(tr("The system prompt must be text."))
    custom = custom_meta_instruction(text)
    if custom is not None and len(custom) > limits.max_text_chars:
        raise InputRejected(
            tr(
                "The system prompt is {length:,} characters long, over the limit of {limit:,}; shorten it.",
                length=len(custom),
                limit=limits.max_text_chars,
            )
        )
    return custom


def form_values(settings: ChatSettings) -> list[Any]:
    """The panel's values for `settings`, in `SETTING_NAMES` order."""
    p = settings.params
    values = {
        "max_new_tokens": p.max_new_tokens,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "repetition_penalty": p.repetition_penalty,
        "seed": -1 if p.seed is None else p.seed,
        "hd_num_single": settings.hd_num_single,
        "hd_num_multi": settings.hd_num_multi,
        "image_mode": settings.image_mode,
        "use_meta": settings.use_meta,
        "meta_instruction": settings.meta_instruction or DEFAULT_META_INSTRUCTION,
    }
    return [values[name] for name in SETTING_NAMES]
