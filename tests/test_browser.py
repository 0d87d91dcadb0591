"""The chat in a real browser: Playwright driving Debian's Chromium against the app on the tiny checkpoint.

One story, in order, because each step needs the state the previous one left: upload two images and ask,
watch the answer stream, stop it (the engine stops too), retry, reload and find the conversation again, then
upload a corrupt file and read the error. Screenshots of each step go to `test-artifacts/` (kept by CI).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_harness import RunningApp, app_settings, start_app, write_png

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--lang=en-US",
]
"""The flags the guide gives for Chromium here, and English as the browser's language: the page follows it
(`test_browser_language.py` sets other languages per context), so every other test reads English."""
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
QUESTION = "Compare these two pictures."
EMPTY_LIST = "Your conversations will be listed here."


def _require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    reason = f"{CHROMIUM} is missing (install Debian's chromium package, see scripts/ensure-chromium)"
    if os.environ.get("CI") or os.environ.get("IXC_REQUIRE_SHARED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def settled(read: Callable[[], int], quiet_s: float = 0.5, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise AssertionError("the engine kept running")
        time.sleep(0.05)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=full_page)


def open_app(page: Any, url: str) -> None:
    """Load the page and wait until it is hydrated and its load event has run."""
    page.goto(url)
    page.get_by_text("Demo model: answers are random noise.").wait_for()
    loaded(page)


def loaded(page: Any) -> None:
    """The page's load event has filled the conversation list (with conversations, or the empty-list hint)."""
    listing = page.locator("#conversation-list")
    listing.get_by_text(EMPTY_LIST).or_(listing.locator("label")).first.wait_for()


def open_settings(page: Any) -> Any:
    """Open the generation settings and return the max-new-tokens box, once the boxes show their values:
    they are drawn when the accordion opens and take their values after, so typing earlier is lost (a
    1024-token answer then outlasts a test's wait)."""
    settings = page.locator("#generation-settings")
    box = settings.get_by_label("number input for Max new tokens")
    if not box.is_visible():
        settings.get_by_text("Generation settings").click()
    wait_until(lambda: box.input_value() != "", "the settings show their values")
    return box


def set_max_new_tokens(page: Any, value: int) -> None:
    box = open_settings(page)
    box.fill(str(value))
    box.press("Enter")


def attach(page: Any, files: list[Path]) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#composer").get_by_test_id("upload-button").click()
    chooser.value.set_files([str(f) for f in files])
    wait_until(
        lambda: page.locator("#composer .thumbnail-item").count() == len(files), "the files are attached"
    )


def last_answer(page: Any) -> str:
    answers = page.get_by_test_id("bot")
    return answers.last.inner_text() if answers.count() else ""


def chat_images(page: Any) -> int:
    """Images shown in the user's messages (Gradio renders each part of a message as its own element)."""
    return page.locator("#chatbot [data-testid=user] img").count()


def composer_ready(page: Any) -> bool:
    return page.locator("#composer").get_by_test_id("submit-button").is_visible()


def test_chat_in_the_browser(app: RunningApp, engine: Any, browser: Any, tmp_path: Path) -> None:
    first = write_png(tmp_path / "sunset.png", (230, 120, 40))
    second = write_png(tmp_path / "sea.png", (30, 90, 200), size=(80, 120))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    open_app(page, app.url)
    shot(page, "1-empty")

    # Upload two images and ask: the images appear in the chat and the answer streams in.
    set_max_new_tokens(page, 1500)
    attach(page, [first, second])
    page.locator("#composer textarea").fill(QUESTION)
    page.locator("#composer textarea").press("Enter")
    page.get_by_test_id("user").get_by_text(QUESTION).wait_for()
    wait_until(lambda: chat_images(page) == 2, "both images show in the chat")
    seen: list[str] = []

    def answer_grew() -> bool:
        text = last_answer(page)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        return len(seen) >= 3

    wait_until(answer_grew, "the answer has streamed in three pieces")
    # The demo model's noise can hold Markdown that renders differently once closed (`*a` -> `*a*`), so
    # the rendered pieces are compared by their word characters only.
    words = [re.sub(r"\W", "", text) for text in seen]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(words))
    shot(page, "2-streaming")

    # Stop: the engine stops decoding, and the answer says it was stopped.
    page.locator("#composer button.stop-button").click()
    steps = settled(lambda: engine.steps_run)
    time.sleep(0.5)
    assert engine.steps_run == steps
    wait_until(lambda: "(stopped)" in last_answer(page), "the answer is marked as stopped")
    wait_until(lambda: composer_ready(page), "the composer is back")
    shot(page, "3-stopped")

    # Retry: a new, complete answer replaces the stopped one.
    set_max_new_tokens(page, 8)
    page.get_by_test_id("bot").last.hover()
    page.get_by_role("button", name="Retry").last.click()
    wait_until(lambda: "(stopped)" not in last_answer(page), "the stopped answer is replaced")
    wait_until(lambda: composer_ready(page) and last_answer(page) != "", "the new answer is complete")
    assert engine.steps_run > steps
    answer = last_answer(page)
    assert page.get_by_test_id("bot").count() == 1
    shot(page, "4-retried")

    # Reload: the conversation is listed and reopened, images and answer included.
    page.reload()
    loaded(page)
    page.locator("#conversation-list").get_by_text(QUESTION).wait_for()
    page.get_by_test_id("user").get_by_text(QUESTION).wait_for()
    wait_until(lambda: chat_images(page) == 2, "the images are back")
    wait_until(lambda: last_answer(page) == answer, "the answer is back")
    shot(page, "5-reloaded")

    # Another browser does not see this conversation.
    stranger = browser.new_context().new_page()
    open_app(stranger, app.url)
    stranger.locator("#conversation-list").get_by_text(EMPTY_LIST).wait_for()
    assert stranger.get_by_text(QUESTION).count() == 0
    stranger.context.close()

    # A corrupt file is refused with its sentence; the typed message stays in the composer.
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(first.read_bytes()[:60] + bytes(range(200)))
    attach(page, [corrupt])
    page.locator("#composer textarea").fill("What is in this one?")
    page.locator("#composer textarea").press("Enter")
    page.get_by_text("'broken.png' is").first.wait_for()
    time.sleep(0.5)  # let the toast finish fading in for the screenshot
    shot(page, "6-corrupt-file", full_page=False)
    wait_until(lambda: composer_ready(page), "the composer is usable again")
    assert page.locator("#composer textarea").input_value() == "What is in this one?"
    assert page.get_by_test_id("user").filter(has_text="What is in this one?").count() == 0
    assert chat_images(page) == 2
    context.close()


def send(page: Any, text: str) -> None:
    page.locator("#composer textarea").fill(text)
    page.locator("#composer textarea").press("Enter")
    page.get_by_test_id("user").get_by_text(text).wait_for()
    wait_until(lambda: composer_ready(page) and last_answer(page) != "", f"'{text}' is answered")


def user_texts(page: Any) -> list[str]:
    return [t for t in page.get_by_test_id("user").all_inner_texts() if t.strip()]


def conversation_titles(page: Any) -> list[str]:
    return page.locator("#conversation-list label").all_inner_texts()


def test_edit_like_undo_and_the_conversation_list(app: RunningApp, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    open_app(page, app.url)
    set_max_new_tokens(page, 6)
    send(page, "First question")
    send(page, "Second question")

    # Edit the first message: everything after it goes, and it is answered again.
    page.get_by_test_id("user").get_by_text("First question").hover()
    page.locator("#chatbot").get_by_role("button", name="Edit").first.click()
    page.locator("#chatbot textarea").fill("Edited question")
    page.locator("#chatbot").get_by_role("button", name="Submit").click()
    wait_until(lambda: user_texts(page) == ["Edited question"], "only the edited message is left")
    wait_until(lambda: composer_ready(page) and page.get_by_test_id("bot").count() == 1, "it is answered")

    # Like the answer: the feedback is stored with the message and shown again after a reload.
    page.locator("#chatbot").get_by_role("button", name="Like").last.click()
    page.locator("#chatbot").get_by_role("button", name="Liked").wait_for()
    page.reload()
    loaded(page)
    page.locator("#chatbot").get_by_role("button", name="Liked").wait_for()

    # Rename, start another conversation, switch back.
    page.get_by_text("Rename or delete").click()
    title_box = page.locator("#conversation-title textarea, #conversation-title input").first
    # The box is drawn when the accordion opens and then takes its value: typing before that is lost.
    wait_until(lambda: title_box.input_value() != "", "the title box shows the title")
    title_box.fill("Renamed chat")
    page.get_by_role("button", name="Rename", exact=True).click()
    wait_until(lambda: conversation_titles(page) == ["Renamed chat"], "the conversation is renamed")
    page.get_by_role("button", name="New conversation").click()
    wait_until(lambda: page.get_by_test_id("user").count() == 0, "the chat is empty")
    send(page, "Another topic")
    wait_until(lambda: conversation_titles(page) == ["Another topic", "Renamed chat"], "both are listed")
    page.locator("#conversation-list").get_by_text("Renamed chat").click()
    wait_until(lambda: user_texts(page) == ["Edited question"], "the first conversation is open again")
    shot(page, "7-conversations")

    # Undo takes the message back into the composer; Delete removes the conversation.
    page.locator("#chatbot").get_by_role("button", name="Undo").last.click()
    wait_until(lambda: page.get_by_test_id("user").count() == 0, "the message is taken back")
    assert page.locator("#composer textarea").input_value() == "Edited question"
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete for good", exact=True).click()
    wait_until(lambda: conversation_titles(page) == ["Another topic"], "the conversation is deleted")
    assert page.get_by_test_id("user").count() == 0
    context.close()


def test_leaving_an_answer_being_written_and_coming_back_to_it(app: RunningApp, browser: Any) -> None:
    """The answer runs on the server: a conversation opened meanwhile shows none of it and can be used;
    coming back (by the list, or after a reload and a detour) follows it live again; Stop still ends it."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(page, app.url)
    set_max_new_tokens(page, 3000)
    question = "A long answer, please"
    page.locator("#composer textarea").fill(question)
    page.locator("#composer textarea").press("Enter")
    wait_until(lambda: len(last_answer(page)) > 20, "the answer is streaming")
    stop = page.locator("#composer button.stop-button")

    def following() -> bool:
        seen = last_answer(page)
        return stop.is_visible() and wait_for_change(lambda: last_answer(page), seen)

    def elsewhere() -> None:
        page.get_by_role("button", name="New conversation").click()
        wait_until(lambda: composer_ready(page), "the new conversation's composer is usable")
        page.wait_for_timeout(1000)
        assert page.get_by_test_id("bot").count() == 0 and page.get_by_test_id("user").count() == 0

    def back() -> None:
        page.locator("#conversation-list").get_by_text(question).click()
        wait_until(following, "the answer is followed live again")

    elsewhere()
    back()
    shot(page, "followed-again")
    page.reload()
    loaded(page)
    wait_until(following, "the reloaded page follows the answer")
    elsewhere()
    back()
    stop.click()
    wait_until(lambda: "(stopped)" in last_answer(page), "the answer is stopped")
    wait_until(lambda: composer_ready(page), "the composer is back")
    page.context.close()


def wait_for_change(read: Callable[[], str], seen: str, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while read() == seen:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_page_says_once_that_the_damaged_history_was_moved_aside(
    tmp_path: Path, engine: Any, browser: Any
) -> None:
    """A store database that cannot be read is moved aside at start (tests/test_data_dir.py); the page says so
    with a notice on its first load, and not again on the next one."""
    settings = app_settings(tmp_path / "data")
    settings.store_dir.mkdir(parents=True)
    (settings.store_dir / "cache.db").write_bytes(b"not a database " * 512)
    app = start_app(settings, engine)
    page = browser.new_page()
    notice = page.get_by_text("could not be read when the app started")
    try:
        assert app.store.recovered_from is not None
        open_app(page, app.url)
        notice.wait_for()
        shot(page, "damaged-history-notice")
        open_app(page, app.url)
        page.wait_for_timeout(1500)
        assert notice.count() == 0
    finally:
        page.close()
        app.close()
