"""The chat page in Chinese: its static texts are Gradio markers with both languages, the sentences its
handlers say come out in the request's language (Chinese with `speaking("zh")` or a zh Accept-Language,
English otherwise), and the `/chat` API keeps plain English parameter labels."""

from __future__ import annotations

import gradio as gr
import pytest
from app_harness import RunningApp
from gradio_client import Client
from gradio_client.exceptions import AppError

from ixc_app.chat.drafts import InputRejected
from ixc_app.config import Limits
from ixc_app.i18n import speaking
from ixc_app.i18n.labels import LABELS
from ixc_app.ui.chat_handlers import stopped
from ixc_app.ui.identity import MissingSession, UnknownHandle, parse_handle
from ixc_app.ui.language import static_values
from ixc_app.ui.settings_form import SETTING_NAMES, by_name, form_values, settings_from_form

ENGLISH_SETTING_LABELS = [
    "Max new tokens",
    "Temperature",
    "Top-p",
    "Top-k",
    "Repetition penalty",
    "Seed",
    "Crops, full detail",
    "Crops, less detail",
    "Image detail",
    "Use the system prompt (meta instruction)",
    "System prompt",
]


def bad_seed_form(app: RunningApp) -> dict[str, object]:
    values = by_name(form_values(app.services.chat.default_settings()))
    return {**values, "seed": 1.5}


def test_a_rejected_setting_is_said_in_chinese_and_in_english(app: RunningApp) -> None:
    form, limits = bad_seed_form(app), app.settings.limits
    with pytest.raises(InputRejected) as english:
        settings_from_form(form, limits)
    assert str(english.value) == "Seed must be a whole number, not 1.5."
    with speaking("zh"), pytest.raises(InputRejected) as chinese:
        settings_from_form(form, limits)
    assert str(chinese.value) == "随机种子 必须是整数，而不是 1.5。"
    with speaking("zh"), pytest.raises(InputRejected, match=r"系统提示词长 .* 个字符"):
        settings_from_form({**form, "seed": -1, "meta_instruction": "x" * 10**6}, limits)


def test_session_and_handle_errors_and_the_stop_note_are_said_in_chinese() -> None:
    assert str(MissingSession()) == "This page has lost its session; reload it to carry on."
    assert stopped().startswith("Stopped: the message was not sent")
    with speaking("zh"):
        assert str(MissingSession()) == "此页面已丢失会话；请重新加载页面后继续。"
        assert stopped().startswith("已停止：")
        with pytest.raises(UnknownHandle, match=r"^此对话 ID 不是本应用返回的"):
            parse_handle("nonsense")


def test_the_hint_names_the_limits_in_both_languages() -> None:
    values = static_values(Limits())
    english, chinese = (text.format_map(values) for text in LABELS["chat.hint"])
    assert f"Up to {Limits().max_files_per_message} images or videos per message" in english
    assert f"每条消息最多 {Limits().max_files_per_message} 个图片或视频" in chinese
    assert "{" not in english + chinese


def test_the_page_is_marked_for_translation_and_the_api_is_labelled_in_english(app: RunningApp) -> None:
    config = app.demo.get_config_file()
    labels = [component["props"].get("label") for component in config["components"]]
    assert str(gr.i18n.I18nData("settings.max_new_tokens")) in map(str, labels)
    assert str(gr.i18n.I18nData("chat.conversations")) in map(str, labels)
    info = app.client().view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    settings = [p for p in info["parameters"] if p["parameter_name"] in SETTING_NAMES]
    assert [p["label"] for p in settings] == ENGLISH_SETTING_LABELS
    defaults = dict(zip(SETTING_NAMES, form_values(app.services.chat.default_settings()), strict=True))
    assert {p["parameter_name"]: p["parameter_default"] for p in settings} == {
        **defaults,
        "max_new_tokens": min(defaults["max_new_tokens"], app.settings.limits.max_new_tokens),
    }


def test_an_api_client_that_asks_for_chinese_is_answered_in_chinese(app: RunningApp) -> None:
    client = Client(app.url, verbose=False, download_files=False, headers={"Accept-Language": "zh-CN"})
    with pytest.raises(AppError, match=r"^此对话 ID 不是本应用返回的"):
        client.predict("hi", [], "nonsense", api_name="/chat")
    with pytest.raises(AppError, match=r"^That conversation id is not one this app returned"):
        app.client().predict("hi", [], "nonsense", api_name="/chat")
