"""The page in the user's language: Gradio's `gr.I18n` for the static text, the request's language for what
the server says (`ixc_app.i18n`), and the switch between them.

Gradio's frontend picks its language from the browser's and can change it live, re-translating every label;
it does not tell the server, and it forgets a change on reload. So the switch keeps the choice in a cookie
(`LANGUAGE_COOKIE`), which every request carries: the server answers in it, or in the browser's
Accept-Language where nothing was chosen, and the page applies it again whenever it loads. Gradio's frontend
exposes no call for this but its core module's `changeLocale` export, which the page imports by the URL it
was loaded from (`APPLY_LANGUAGE_JS`); `tests/test_browser_language.py` is what tells if a Gradio upgrade
moves it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import gradio as gr
from gradio.context import LocalContext

from ixc_app.compose.strings import STRINGS
from ixc_app.compose.strings_zh import STRINGS_ZH
from ixc_app.config import Limits
from ixc_app.i18n import LANGUAGES, current_language, pick_language, set_language_source
from ixc_app.i18n.labels import LABELS
from ixc_app.ui.errors import INSTANT

LANGUAGE_COOKIE = "ixc_lang"
FRONTEND_LOCALES = {"en": "en", "zh": "zh-CN"}
"""Our language -> the locale Gradio's frontend is set to (its own texts exist for zh-CN; ours are under zh,
which svelte-i18n falls back to)."""

_APPLY = (
    "async function ixcApplyLanguage(language) {"
    " const core = performance.getEntriesByType('resource').map((entry) => entry.name)"
    r"  .find((name) => /\/assets\/core-[^/]*\.js$/.test(name));"
    " if (!core) throw new Error('IXC Studio: no Gradio core module, so the language cannot change.');"
    f" (await import(core)).changeLocale({json.dumps(FRONTEND_LOCALES)}[language] || 'en'); }}"
)
CHOOSE_JS = (
    f"async (language) => {{ {_APPLY}"
    " const where = location.protocol === 'https:' ? 'SameSite=None; Secure; Partitioned' : 'SameSite=Lax';"
    f" document.cookie = `{LANGUAGE_COOKIE}=${{language}}; path=/; max-age=31536000; ${{where}}`;"
    " await ixcApplyLanguage(language); return language; }"
)
"""The switch's `input` event: remember the choice, then translate the page in place. Over HTTPS the cookie is
one a third-party frame keeps too (a Space shows the app in an iframe of huggingface.co)."""
LOAD_JS = (
    f"async () => {{ {_APPLY}"
    f" const chosen = (document.cookie.match(/(?:^|; ){LANGUAGE_COOKIE}=(\\w+)/) || [])[1];"
    " if (chosen) { await ixcApplyLanguage(chosen); return chosen; }"
    " const browser = (navigator.language || 'en').toLowerCase().split('-')[0];"
    f" return {json.dumps(list(LANGUAGES))}.includes(browser) ? browser : 'en'; }}"
)
"""On page load: apply a remembered choice and show it on the switch, else show the browser's language."""


def request_language() -> str | None:
    """The language of the Gradio request being answered, or None outside one (`i18n.set_language_source`)."""
    request = LocalContext.request.get(None)
    if request is None:
        return None
    return pick_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def static_values(limits: Limits) -> dict[str, object]:
    """The figures the page's static text names (a hint's limits), by the placeholder names it uses."""
    return {
        "max_files": limits.max_files_per_message,
        "max_video_seconds": f"{limits.max_video_seconds:g}",
        "max_text_chars": f"{limits.max_text_chars:,}",
    }


def composer_texts() -> dict[str, tuple[str, str]]:
    """The composer's strings that are static text (no placeholders: those the composer fills in when it
    says them), by key: (English, Chinese)."""
    return {key: (text, STRINGS_ZH[key]) for key, text in STRINGS.items() if "{" not in text}


def translations(values: Mapping[str, object]) -> gr.I18n:
    """Every static text in both languages, `values` (the limits a hint names) filled in where a text asks."""
    labels = {key: (en.format_map(values), zh.format_map(values)) for key, (en, zh) in LABELS.items()}
    texts = {**labels, **composer_texts()}
    return gr.I18n(
        en={key: en for key, (en, _zh) in texts.items()}, zh={key: zh for key, (_en, zh) in texts.items()}
    )


def word(key: str) -> gr.i18n.I18nData:
    """Static text named by `key` (`labels.LABELS`, or a composer string without placeholders), in the
    page's language."""
    if key not in LABELS and key not in composer_texts():
        raise KeyError(f"no static text is named {key!r}")
    return gr.i18n.I18nData(key)


def language_switch() -> gr.Radio:
    """English / 中文, in the header."""
    return gr.Radio(
        [(name, code) for code, name in LANGUAGES.items()],
        value=None,
        label=word("app.language"),
        show_label=False,
        container=False,
        scale=0,
        min_width=170,
        elem_id="language-switch",
    )


def static_text(key: str) -> str:
    """The static text `key` in the request's language, as plain text: for what Gradio's frontend does not
    translate again when the page's language changes."""
    english, chinese = LABELS[key] if key in LABELS else composer_texts()[key]
    return chinese if current_language() == "zh" else english


def wire_language(demo: gr.Blocks, switch: gr.Radio, tabs: Mapping[gr.Tab, str]) -> None:
    """The switch and the page load apply the language; then `tabs` are labelled again (each by the key
    of its static text) in the language the request carries: Gradio's tab bar translates a label only
    when it is first drawn, and redraws it only for a label that differs from the one it has."""
    set_language_source(request_language)
    for key in tabs.values():
        static_text(key)  # a KeyError now rather than on the first page load

    def relabel() -> list[gr.Tab]:
        return [gr.Tab(label=static_text(key)) for key in tabs.values()]

    for applied in (
        demo.load(None, None, switch, js=LOAD_JS, api_visibility="private"),
        switch.input(None, switch, switch, js=CHOOSE_JS, api_visibility="private"),
    ):
        applied.then(relabel, None, list(tabs), api_visibility="private", **INSTANT)
