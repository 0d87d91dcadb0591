"""The generation settings are keyed by name in one place: panel, handlers and the `/chat` API follow it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from ixc_app.chat import ChatSettings
from ixc_app.chat.drafts import InputRejected
from ixc_app.config import Limits
from ixc_app.engines.base import GenerationParams
from ixc_app.ui.api import ChatApi
from ixc_app.ui.layout import SettingsPanel
from ixc_app.ui.settings_form import SETTING_NAMES, by_name, form_values, settings_from_form


def test_the_panel_has_one_component_per_setting_name() -> None:
    assert sorted(f.name for f in dataclasses.fields(SettingsPanel)) == sorted(SETTING_NAMES)


def test_the_chat_api_takes_the_settings_by_the_same_names_in_the_same_order() -> None:
    parameters = list(inspect.signature(ChatApi.chat).parameters)
    assert parameters[-1] == "request"  # Gradio's request, injected by Gradio: no API parameter
    assert parameters[-len(SETTING_NAMES) - 1 : -1] == list(SETTING_NAMES)


def test_form_values_round_trip_through_the_names() -> None:
    settings = ChatSettings(
        params=GenerationParams(max_new_tokens=77, temperature=0.5, top_p=0.9, top_k=12, seed=5),
        hd_num_single=9,
        hd_num_multi=3,
        image_mode="multi",
        use_meta=False,
    )
    assert settings_from_form(by_name(form_values(settings)), Limits()) == settings


def test_a_value_out_of_range_is_refused_by_name() -> None:
    values = by_name(form_values(ChatSettings()))
    with pytest.raises(InputRejected, match="Top-k must be between 0 and 200"):
        settings_from_form({**values, "top_k": 999}, Limits())
    with pytest.raises(ValueError):
        by_name(form_values(ChatSettings())[:-1])
