"""The page: header, demo-model banner, and a chat tab (the composer tab slots into the same `gr.Tabs`).

Layout only: components are created here and handed to the event wiring as plain dataclasses, so the wiring
reads like a list of events and the layout like a page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ixc_app.chat import ChatSettings
from ixc_app.config import Settings
from ixc_app.i18n.labels import LABELS
from ixc_app.media.validate import TEXT_EXTENSIONS
from ixc_app.ui.drawer import conversation_drawer
from ixc_app.ui.examples import Example
from ixc_app.ui.language import language_switch, word
from ixc_app.ui.settings_form import (
    MAX_HD_NUM,
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MAX_TOP_K,
    SETTING_NAMES,
    by_name,
    form_values,
)
from ixc_app.ui.transfer import TransferView, transfer_buttons

# No single `$`: prices ("$5 and $10") are far more common in chat than inline maths written that way.
LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
Text = Callable[[gr.i18n.I18nData], Any]
"""How a component shows a static text (`ui.language.word`): the marker the page translates, or English."""


def translated(marker: gr.i18n.I18nData) -> gr.i18n.I18nData:
    return marker


def english(marker: gr.i18n.I18nData) -> str:
    """The English of a static text, for a label that names an API parameter (API docs are not translated)."""
    return LABELS[marker.key][0]


def image_modes(text: Text = translated) -> list[tuple[Any, str]]:
    return [
        (text(word("settings.image_mode.auto")), "auto"),
        (text(word("settings.image_mode.single")), "single"),
        (text(word("settings.image_mode.multi")), "multi"),
    ]


@dataclass(frozen=True)
class SettingsPanel:
    """Generation settings, one component per name of `settings_form.SETTING_NAMES`."""

    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    repetition_penalty: gr.Slider
    seed: gr.Number
    hd_num_single: gr.Slider
    hd_num_multi: gr.Slider
    image_mode: gr.Radio
    use_meta: gr.Checkbox
    meta_instruction: gr.Textbox

    @property
    def components(self) -> list[gr.components.Component]:
        """The components in `SETTING_NAMES` order, the order handlers receive their values in."""
        return [getattr(self, name) for name in SETTING_NAMES]


@dataclass(frozen=True)
class ApiPorts:
    """Hidden components that give the `/chat` endpoint typed, documented parameters and results; the
    settings are a hidden copy of the panel (same ranges and defaults), in English for the API docs."""

    trigger: gr.Button
    message: gr.Textbox
    files: gr.File
    conversation_in: gr.Textbox
    answer: gr.Textbox
    conversation_out: gr.Textbox
    settings: SettingsPanel


@dataclass(frozen=True)
class ChatView:
    browser: gr.BrowserState
    new_chat: gr.Button
    conversations: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    confirm_delete: gr.Column
    delete_for_good: gr.Button
    keep: gr.Button
    chatbot: gr.Chatbot
    textbox: gr.MultimodalTextbox
    settings: SettingsPanel
    api: ApiPorts
    transfer: TransferView

    @property
    def opened(self) -> list[Any]:
        """What shows which conversation is open, in the order of `ChatHandlers._view`: every event that opens
        or leaves a conversation writes all of it."""
        return [
            self.browser,
            self.conversations,
            self.chatbot,
            self.title,
            self.textbox,
            *self.settings.components,
        ]


def header(is_demo_model: bool, *, hf_oauth: bool = False) -> gr.Radio:
    """The title, the language switch (returned, for its wiring), on a Space with Hugging Face OAuth the
    sign-in button (a signed-in user's history follows them to any browser), and for the random-weight demo
    model a banner that stays on every tab."""
    with gr.Row(elem_classes="app-header"):
        gr.Markdown(word("app.header"))
        switch = language_switch()
        if hf_oauth:
            gr.LoginButton(size="sm", scale=0, min_width=200, elem_id="login")
    if is_demo_model:
        # The same sentence for every visitor: why the demo model runs (it may name server paths) is logged
        # at startup, not shown in the page.
        gr.Markdown(word("app.demo_banner"), elem_id="demo-banner")
    return switch


def settings_panel(settings: Settings, defaults: ChatSettings) -> SettingsPanel:
    """Sampling on the first rows, image detail below; the conversation keeps what was used for it."""
    with gr.Accordion(word("settings.title"), open=False, elem_id="generation-settings"):
        return setting_fields(settings, defaults)


def setting_fields(
    settings: Settings, defaults: ChatSettings, text: Text = translated, *, shown: bool = True
) -> SettingsPanel:
    """The settings' components, their texts shown by `text`; `shown=False`: the API's hidden copy (no rows,
    no element ids of the page's)."""
    params = defaults.params
    row: Callable[[], Any] = gr.Row if shown else contextlib.nullcontext

    def slider(low: float, high: float, value: float, step: float, label: Any, info: Any) -> gr.Slider:
        return gr.Slider(
            low, high, value=value, step=step, label=text(label), info=text(info),
            visible=shown,
        )  # fmt: skip

    with row():
        max_new_tokens = slider(
            1,
            settings.limits.max_new_tokens,
            min(params.max_new_tokens, settings.limits.max_new_tokens),
            1,
            word("settings.max_new_tokens"),
            word("settings.max_new_tokens.info"),
        )
        temperature = slider(
            0.0,
            MAX_TEMPERATURE,
            params.temperature,
            0.05,
            word("settings.temperature"),
            word("settings.temperature.info"),
        )
        top_p = slider(0.05, 1.0, params.top_p, 0.05, word("settings.top_p"), word("settings.top_p.info"))
    with row():
        top_k = slider(0, MAX_TOP_K, params.top_k, 1, word("settings.top_k"), word("settings.top_k.info"))
        repetition_penalty = slider(
            1.0,
            MAX_REPETITION_PENALTY,
            params.repetition_penalty,
            0.005,
            word("settings.repetition_penalty"),
            word("settings.repetition_penalty.info"),
        )
        seed = gr.Number(
            value=-1 if params.seed is None else params.seed,
            precision=0,
            label=text(word("settings.seed")),
            info=text(word("settings.seed.info")),
            visible=shown,
        )
    with row():
        image_mode = gr.Radio(
            image_modes(text),
            value=defaults.image_mode,
            label=text(word("settings.image_mode")),
            scale=2,
            visible=shown,
        )
        hd_num_single = slider(
            1,
            MAX_HD_NUM,
            defaults.hd_num_single,
            1,
            word("settings.hd_num_single"),
            word("settings.hd_num_single.info"),
        )
        hd_num_multi = slider(
            1,
            MAX_HD_NUM,
            defaults.hd_num_multi,
            1,
            word("settings.hd_num_multi"),
            word("settings.hd_num_multi.info"),
        )
    use_meta = gr.Checkbox(
        value=defaults.use_meta,
        label=text(word("settings.use_meta")),
        info=text(word("settings.use_meta.info")),
        visible=shown,
    )
    meta_instruction = gr.Textbox(
        value=by_name(form_values(defaults))["meta_instruction"],
        label=text(word("settings.meta_instruction")),
        info=text(word("settings.meta_instruction.info")),
        lines=4,
        max_lines=12,
        elem_id="meta-instruction" if shown else None,
        visible=shown,
    )
    return SettingsPanel(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        seed=seed,
        hd_num_single=hd_num_single,
        hd_num_multi=hd_num_multi,
        image_mode=image_mode,
        use_meta=use_meta,
        meta_instruction=meta_instruction,
    )


def api_ports(settings: Settings, defaults: ChatSettings) -> ApiPorts:
    with gr.Group(visible=False):
        return ApiPorts(
            trigger=gr.Button("chat", visible=False),
            message=gr.Textbox(label="message", visible=False),
            files=gr.File(label="files", file_count="multiple", type="filepath", visible=False),
            conversation_in=gr.Textbox(label="conversation_id", visible=False),
            answer=gr.Textbox(label="answer", visible=False),
            conversation_out=gr.Textbox(label="conversation_id", visible=False),
            settings=setting_fields(settings, defaults, english, shown=False),
        )


def chat_tab(settings: Settings, defaults: ChatSettings, examples: list[Example]) -> ChatView:
    browser = gr.BrowserState(None, storage_key="ixc-studio-session", secret=settings.secret)
    with gr.Row(equal_height=False):
        with conversation_drawer():
            new_chat = gr.Button(word("chat.new"), variant="primary", elem_id="new-conversation")
            conversations = gr.Radio(
                [],
                label=word("chat.conversations"),
                elem_classes="conversation-list",
                elem_id="conversation-list",
            )
            with gr.Accordion(word("chat.manage"), open=False, elem_id="manage-conversation"):
                title = gr.Textbox(label=word("chat.name"), max_lines=1, elem_id="conversation-title")
                with gr.Row():
                    rename = gr.Button(word("chat.rename"), size="sm", elem_id="rename-conversation")
                    delete = gr.Button(
                        word("chat.delete"), size="sm", variant="stop", elem_id="delete-conversation"
                    )
                with gr.Column(visible=False, elem_id="confirm-delete") as confirm_delete:
                    gr.Markdown(word("chat.confirm_delete"))
                    with gr.Row():
                        delete_for_good = gr.Button(word("chat.delete_for_good"), size="sm", variant="stop")
                        keep = gr.Button(word("chat.keep"), size="sm")
            transfer = transfer_buttons()
        with gr.Column(scale=4, elem_classes="chat-column"):
            chatbot = gr.Chatbot(
                label=word("chat.conversation"),
                show_label=False,
                height="68vh",
                editable="user",
                # Each part of a message (an image, a video, the text) in a bubble of its own: Gradio's edit
                # box edits every part of a bubble as text, and fails on a bubble that holds media.
                group_consecutive_messages=False,
                buttons=["copy", "copy_all"],
                latex_delimiters=LATEX_DELIMITERS,
                placeholder=word("chat.placeholder"),
                examples=[example.message() for example in examples],
                elem_id="chatbot",
            )
            textbox = gr.MultimodalTextbox(
                show_label=False,
                placeholder=word("chat.composer"),
                file_types=["image", "video", *sorted(TEXT_EXTENSIONS)],
                file_count="multiple",
                max_plain_text_length=settings.limits.max_text_chars,
                submit_btn=True,
                stop_btn=False,
                autofocus=True,
                elem_id="composer",
            )
            # Its limits are filled in at launch (`ui.language.static_values`).
            gr.Markdown(word("chat.hint"), elem_classes="hint")
            panel = settings_panel(settings, defaults)
    return ChatView(
        browser=browser,
        new_chat=new_chat,
        conversations=conversations,
        title=title,
        rename=rename,
        delete=delete,
        confirm_delete=confirm_delete,
        delete_for_good=delete_for_good,
        keep=keep,
        chatbot=chatbot,
        textbox=textbox,
        settings=panel,
        api=api_ports(settings, defaults),
        transfer=transfer,
    )
