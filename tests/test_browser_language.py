"""The page in English and Chinese in a real browser: the browser's language picks it, the switch changes it
in place (static text and what the server says), and the choice outlives a reload.

Playwright drives Debian's Chromium against the app on the tiny checkpoint (the harness of test_browser.py),
in contexts whose browser language is set; screenshots go to `test-artifacts/` (kept by CI).
"""

from __future__ import annotations

from typing import Any

import pytest
from app_harness import RunningApp
from test_browser import browser, shot  # noqa: F401 (the fixture)
from test_chat_browser import toast

from ixc_app.compose.strings import STRINGS
from ixc_app.compose.strings_zh import STRINGS_ZH
from ixc_app.i18n import CATALOGUES
from ixc_app.i18n.labels import LABELS

pytestmark = pytest.mark.browser

EMPTY = "The message is empty; type a question or attach an image or a video."
NEW_CONVERSATION = "chat.new"


def text(key: str, language: str) -> str:
    english, chinese = LABELS[key] if key in LABELS else (STRINGS[key], STRINGS_ZH[key])
    return english if language == "en" else chinese


def said(sentence: str, language: str) -> str:
    return sentence if language == "en" else CATALOGUES["zh"][sentence]


def open_in(browser: Any, app: RunningApp, locale: str) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    page.goto(app.url)
    return page


def shows(page: Any, language: str) -> None:
    """The page's static text and the server's sentences are in `language`, and the switch says so (the
    empty list's hint is written by the page's load event, so it is there once the load has run)."""
    page.locator("#conversation-list").get_by_text(text("chat.list_empty", language)).wait_for()
    page.locator("#new-conversation").get_by_text(text(NEW_CONVERSATION, language), exact=True).wait_for()
    page.get_by_role("tab", name=text("ui.tab", language)).wait_for()
    switch = page.locator("#language-switch")
    switch.get_by_label("English" if language == "en" else "中文").wait_for()
    assert switch.locator("input:checked").get_attribute("value") == language
    page.locator("#composer textarea").press("Enter")
    toast(page, said(EMPTY, language))
    page.locator(".toast-close").first.click()  # the next toast is read alone


@pytest.mark.parametrize(("locale", "first", "other"), [("zh-CN", "zh", "en"), ("en-US", "en", "zh")])
def test_the_browsers_language_then_the_switch_and_a_reload(
    app: RunningApp,
    browser: Any,  # noqa: F811
    locale: str,
    first: str,
    other: str,
) -> None:
    page = open_in(browser, app, locale)
    shows(page, first)
    shot(page, f"language-{locale}", full_page=False)

    page.locator("#language-switch").get_by_label("English" if other == "en" else "中文").check()
    shows(page, other)
    shot(page, f"language-{locale}-switched", full_page=False)

    page.reload()
    shows(page, other)


def test_the_composer_in_chinese(app: RunningApp, browser: Any) -> None:  # noqa: F811
    page = open_in(browser, app, "zh-CN")
    page.get_by_role("tab", name=text("ui.tab", "zh")).click()
    page.locator("#compose").get_by_text(text("ui.compose", "zh"), exact=True).wait_for()
    page.locator("#edit-action").get_by_label(text("action.rewrite", "zh")).wait_for()
    page.locator("#compose-status").get_by_text(text("ui.idle", "zh")).wait_for()
    page.locator("#compose").click()  # no instruction yet
    toast(page, STRINGS_ZH["error.empty_instruction"])
    shot(page, "language-zh-CN-composer", full_page=False)
