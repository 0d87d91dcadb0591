"""The chat in a real browser, for what a user sees beyond the main story of `test_browser.py`: settings that
are kept as soon as they change, the conversation list as a drawer on a phone, a video message while it is
processed, and the page in English or Chinese. Screenshots go to `test-artifacts/` (kept by CI).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_harness import UPLOADS, HeldFrame, RunningApp, write_mp4
from test_browser import (
    attach,
    browser,  # noqa: F401 (the fixture of the main story, shared)
    composer_ready,
    last_answer,
    open_app,
    open_settings,
    send,
    set_max_new_tokens,
    shot,
    wait_until,
)
from test_chat_browser import media_shown, toast

from ixc_app.ui.chat_handlers import stopped

pytestmark = pytest.mark.browser

PIRATE = "You are a pirate. Answer in one sentence."


def max_new_tokens(page: Any) -> str:
    return page.locator("#generation-settings").get_by_label("number input for Max new tokens").input_value()


def system_prompt(page: Any) -> str:
    return page.locator("#meta-instruction textarea").input_value()


def set_system_prompt(page: Any, text: str) -> None:
    """Type it as a user does (Playwright's `fill` does not raise the textbox's input event)."""
    open_settings(page)
    box = page.locator("#meta-instruction textarea")
    box.press("Control+a")
    if text:
        box.press_sequentially(text)
    else:
        box.press("Backspace")


def test_settings_are_kept_when_changed_and_new_conversations_start_from_them(
    app: RunningApp,
    browser: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    open_app(page, app.url)
    open_settings(page)
    assert system_prompt(page).startswith("You are an AI assistant whose name is InternLM-XComposer")

    # Changed, never sent: still there after a reload.
    set_max_new_tokens(page, 7)
    set_system_prompt(page, PIRATE)
    page.wait_for_timeout(500)  # the change is saved by an event of its own, unqueued
    page.reload()
    open_app(page, app.url)
    open_settings(page)
    wait_until(lambda: max_new_tokens(page) == "7", "the changed max new tokens is back after a reload")
    assert system_prompt(page) == PIRATE
    shot(page, "ux-8-settings-kept")

    # The conversation keeps its settings; a change made while it is open is kept for it too, and a new
    # conversation starts from the last settings chosen.
    send(page, "Ahoy?")
    set_max_new_tokens(page, 5)
    page.get_by_role("button", name="New conversation").click()
    wait_until(lambda: page.get_by_test_id("user").count() == 0, "the chat is empty")
    assert (max_new_tokens(page), system_prompt(page)) == ("5", PIRATE)
    set_max_new_tokens(page, 9)
    page.locator("#conversation-list").get_by_text("Ahoy?").click()
    wait_until(lambda: max_new_tokens(page) == "5", "the first conversation shows its own settings")
    assert system_prompt(page) == PIRATE

    # Emptying the system prompt brings back the official one; another browser starts from the app's defaults.
    set_system_prompt(page, "")
    page.get_by_text("Generation settings").click()
    page.wait_for_timeout(500)
    page.reload()
    open_app(page, app.url)
    open_settings(page)
    wait_until(
        lambda: system_prompt(page).startswith("You are an AI assistant"), "the official prompt is back"
    )
    stranger = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(stranger, app.url)
    open_settings(stranger)
    assert max_new_tokens(stranger) != "9"
    stranger.context.close()
    context.close()


PHONE = {"width": 390, "height": 844}


def in_view(page: Any, selector: str) -> bool:
    """Whether the element lies wholly inside the first screen of the page, as it is before any scrolling
    (so a page the browser scrolled to a focused element does not count as fitting)."""
    box = page.locator(selector).first.bounding_box()
    scroll_x, scroll_y = page.evaluate("[window.scrollX, window.scrollY]")
    viewport = page.viewport_size
    if box is None:
        return False
    left, top = box["x"] + scroll_x, box["y"] + scroll_y
    return (
        left >= 0
        and top >= 0
        and left + box["width"] <= viewport["width"]
        and top + box["height"] <= viewport["height"]
    )


def uncovered(page: Any, selector: str) -> bool:
    """Whether what the user sees at the element's centre is the element itself, not a drawer over it."""
    return bool(
        page.locator(selector).first.evaluate(
            """element => {
              const box = element.getBoundingClientRect();
              const seen = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
              return seen !== null && (element === seen || element.contains(seen));
            }"""
        )
    )


def test_on_a_phone_the_list_is_a_drawer_and_the_composer_is_on_the_first_screen(
    app: RunningApp,
    browser: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    open_app(page, app.url)
    page.wait_for_timeout(400)  # the drawer's slide
    wait_until(lambda: not in_view(page, "#new-conversation"), "the drawer is folded")
    shot(page, "ux-9-phone", full_page=False)
    assert in_view(page, "#composer textarea") and uncovered(page, "#composer textarea")

    # The drawer opens over the chat, and picking a conversation folds it again.
    send(page, "On the go")
    page.locator("#conversation-drawer .toggle-button").click()
    wait_until(lambda: in_view(page, "#new-conversation"), "the drawer is open")
    page.wait_for_timeout(400)
    shot(page, "ux-9-phone-drawer", full_page=False)
    page.locator("#new-conversation").click()
    wait_until(lambda: not in_view(page, "#new-conversation"), "the drawer folds for a new conversation")
    page.locator("#conversation-drawer .toggle-button").click()
    wait_until(lambda: in_view(page, "#new-conversation"), "the drawer is open again")
    page.locator("#conversation-list").get_by_text("On the go").click()
    wait_until(lambda: not in_view(page, "#new-conversation"), "the drawer folds after a choice")
    page.get_by_test_id("user").get_by_text("On the go").wait_for()
    wait_until(
        lambda: in_view(page, "#composer textarea") and uncovered(page, "#composer textarea"),
        "the composer is in sight once the drawer has slid away",
    )
    context.close()

    # On a wide screen the list stays beside the chat.
    wide = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(wide, app.url)
    wide.wait_for_timeout(400)
    assert in_view(wide, "#new-conversation")
    shot(wide, "ux-9-wide", full_page=False)
    wide.context.close()


@pytest.fixture
def held_frame(app: RunningApp, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldFrame]:
    """The app's ingest, holding at the second decoded frame of a video until released."""
    fake = HeldFrame(app.services.chat.ingest, hold=2)
    monkeypatch.setattr(app.services.chat, "ingest", fake)
    yield fake
    fake.release.set()


def pending_line(page: Any) -> Any:
    return page.get_by_test_id("user").get_by_text(re.compile(r"Processing .* … "))


def test_a_video_message_shows_at_once_with_the_progress_of_its_frames(
    app: RunningApp,
    browser: Any,  # noqa: F811 (the fixture imported above)
    held_frame: HeldFrame,
    tmp_path: Path,
) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(page, app.url)
    set_max_new_tokens(page, 4)
    attach(page, [write_mp4(tmp_path / "walk.mp4", seconds=8)])
    page.locator("#composer textarea").fill("What happens in the clip?")
    page.locator("#composer textarea").press("Enter")

    # While the frames are decoded: the message with a line saying how far its video is, no answer yet, Stop.
    user = page.get_by_test_id("user")
    user.get_by_text("What happens in the clip?").wait_for()
    user.get_by_text("Processing walk.mp4 … decoding frame 2/8").wait_for()
    assert page.get_by_test_id("bot").count() == 0
    assert page.locator("#composer button.stop-button").is_visible()
    assert page.locator("#composer textarea").input_value() == ""
    shot(page, "ux-6-video-processing", full_page=False)

    held_frame.release.set()
    wait_until(lambda: composer_ready(page) and last_answer(page) != "", "the message is answered")
    assert pending_line(page).count() == 0
    assert media_shown(page) == (0, 1)
    assert page.get_by_test_id("user").get_by_text("What happens in the clip?").count() == 1
    shot(page, "ux-6-video-answered", full_page=False)
    page.context.close()


def test_stop_while_a_video_is_processed_keeps_nothing_and_gives_the_text_back(
    app: RunningApp,
    browser: Any,  # noqa: F811 (the fixture imported above)
    held_frame: HeldFrame,
    tmp_path: Path,
) -> None:
    stored_before = {entry.key for entry in app.store.media.entries()}
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(page, app.url)
    attach(page, [write_mp4(tmp_path / "never.mp4", seconds=6, size=(80, 48))])
    page.locator("#composer textarea").fill("Describe this one")
    page.locator("#composer textarea").press("Enter")
    page.get_by_test_id("user").get_by_text("Processing never.mp4 … decoding frame 2/6").wait_for()

    page.locator("#composer button.stop-button").click()
    toast(page, stopped())
    wait_until(lambda: composer_ready(page), "the composer is unlocked")
    page.wait_for_timeout(500)  # the toast fades in, for the screenshot
    shot(page, "ux-6-video-stopped", full_page=False)
    assert page.locator("#composer textarea").input_value() == "Describe this one"
    assert page.get_by_test_id("user").count() == 0
    assert page.get_by_test_id("bot").count() == 0
    assert {entry.key for entry in app.store.media.entries()} == stored_before
    assert not any(path.is_file() for path in Path(UPLOADS).rglob("never.mp4"))
    page.reload()
    open_app(page, app.url)
    assert page.get_by_test_id("user").count() == 0
    page.context.close()


def test_a_file_refused_after_a_video_takes_the_placeholder_and_the_video_away(
    app: RunningApp,
    browser: Any,  # noqa: F811 (the fixture imported above)
    held_frame: HeldFrame,
    tmp_path: Path,
) -> None:
    stored_before = {entry.key for entry in app.store.media.entries()}
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(page, app.url)
    attach(page, [write_mp4(tmp_path / "first.mp4", seconds=5, size=(64, 48)), broken])
    page.locator("#composer textarea").fill("And these?")
    page.locator("#composer textarea").press("Enter")
    user = page.get_by_test_id("user")
    user.get_by_text("Processing first.mp4 … decoding frame 2/5").wait_for()
    user.get_by_text("Processing broken.mp4 … waiting").wait_for()

    held_frame.release.set()
    toast(page, "'broken.mp4' could not be played as a video")
    wait_until(lambda: composer_ready(page), "the composer is unlocked")
    page.wait_for_timeout(500)  # the toast fades in, for the screenshot
    shot(page, "ux-6-video-refused", full_page=False)
    assert pending_line(page).count() == 0
    assert page.get_by_test_id("user").count() == 0
    assert page.locator("#composer textarea").input_value() == "And these?"
    assert {entry.key for entry in app.store.media.entries()} == stored_before
    page.context.close()
