"""The app's languages: every sentence a user reads is English in the code and Chinese in a catalogue.

Two kinds of text, two routes (gradio6.md has no word on this; it was measured with Gradio 6.31 in Chromium):
- Static text of the page (labels, placeholders, info lines, button and Markdown values) is named by a key of
  `labels.LABELS` and translated by Gradio's frontend (`gr.I18n`), which follows the page's language live.
- Sentences the server writes (errors, warnings, notes, status lines) are translated here, when they are said:
  `tr(template, **values)` returns the template in the language of the request being answered, filled in.
  Gradio's frontend does not translate error toasts or chat messages, so these cannot go the first route.

The request's language is the user's choice (the page's switch) or else the browser's (`pick_language`); the
UI registers where to read it (`set_language_source`), so use cases need not pass it down. Outside a request
(API scripts, logs, background threads) it is English. This package imports nothing of the app.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from ixc_app.i18n.zh_chat import CHAT_ZH
from ixc_app.i18n.zh_media import MEDIA_ZH
from ixc_app.i18n.zh_ui import UI_ZH

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
"""Language code -> its own name, as the switch shows it."""
DEFAULT_LANGUAGE = "en"
CATALOGUES: dict[str, dict[str, str]] = {"zh": {**CHAT_ZH, **MEDIA_ZH, **UI_ZH}}
"""Language -> English template -> its translation (same placeholders). English needs no catalogue."""

_spoken: contextvars.ContextVar[str | None] = contextvars.ContextVar("ixc_language", default=None)


def _no_request() -> str | None:
    return None


_source: Callable[[], str | None] = _no_request


def set_language_source(source: Callable[[], str | None]) -> None:
    """Where the current request's language is read from (the UI sets it once; `None` from it: English)."""
    global _source
    _source = source


def current_language() -> str:
    return _spoken.get() or _source() or DEFAULT_LANGUAGE


@contextlib.contextmanager
def speaking(language: str) -> Iterator[None]:
    """Say everything in `language` within the block, whatever the request says (tests, a task that
    outlives its request)."""
    token = _spoken.set(language)
    try:
        yield
    finally:
        _spoken.reset(token)


def tr(template: str, **values: object) -> str:
    """`template` (an English `str.format` sentence, written as a literal so the catalogue test finds it)
    in the current language, filled in with `values`."""
    said = CATALOGUES.get(current_language(), {}).get(template, template)
    return said.format(**values)


def pick_language(choice: str | None, accept_language: str | None) -> str:
    """The language to answer in: the user's own choice if it is one of ours, else the first of the
    browser's languages (an Accept-Language header, by its q weights) that we have, else English."""
    if choice in LANGUAGES:
        return choice
    ranked: list[tuple[float, int, str]] = []
    for order, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        ranked.append((-weight, order, tag.strip().lower().split("-")[0]))
    for weight, _order, code in sorted(ranked):
        if code in LANGUAGES and weight < 0:
            return code
    return DEFAULT_LANGUAGE
