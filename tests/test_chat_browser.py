"""The chat's own behaviour in a real browser: what a user sees when something is refused, editing messages
with media, pasted text and text files, maths, image labels, deleting, and answer versions.

Playwright drives Debian's Chromium against the app on the tiny checkpoint (the harness of test_browser.py);
screenshots go to `test-artifacts/` (kept by CI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from app_harness import RunningApp, write_mp4, write_png
from test_browser import (  # noqa: F401 (the fixture)
    attach,
    browser,
    composer_ready,
    last_answer,
    loaded,
    open_app,
    send,
    set_max_new_tokens,
    shot,
    user_texts,
    wait_until,
)

from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.compose_handlers import ComposeHandlers


def toast(page: Any, sentence: str) -> None:
    """The sentence shows on the page (Gradio's toast), not only in the server log."""
    page.locator(".toast-body").get_by_text(sentence).first.wait_for(timeout=15_000)


EDITED = "Describe the picture\nand the clip"


def media_shown(page: Any) -> tuple[int, int]:
    """(images, videos) in the user's messages."""
    user = page.locator("#chatbot [data-testid=user]")
    return user.locator("img").count(), user.locator("video").count()


def new_page(chromium: Any, app: RunningApp) -> Any:
    page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_app(page, app.url)
    return page


def test_every_event_that_runs_a_handler_is_queued(app: RunningApp) -> None:
    """Gradio's page shows only a queued event's error, warning or notice (`ui.errors.INSTANT`): in the chat
    and in the composer, only the browser-side Stop events may skip the queue."""
    handlers = [fn for fn in app.demo.fns.values() if fn.fn is not None]
    assert any(isinstance(getattr(fn.fn, "__self__", None), ChatHandlers) for fn in handlers)
    assert any(isinstance(getattr(fn.fn, "__self__", None), ComposeHandlers) for fn in handlers)
    assert [fn.name for fn in handlers if not fn.queue] == []


@pytest.mark.browser
def test_every_instant_rejection_is_shown_on_the_page(
    app: RunningApp,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = new_page(browser, app)
    composer = page.locator("#composer textarea")

    composer.press("Enter")
    toast(page, "The message is empty; type a question or attach an image or a video.")

    composer.fill("x" * 30_000)
    composer.press("Enter")
    toast(page, "The message is 30,000 characters long, over the limit of 20,000")
    shot(page, "rejection-long-message", full_page=False)

    files = [write_png(tmp_path / f"p{i}.png", (20 * i, 90, 200)) for i in range(9)]
    attach(page, files)
    composer.fill("Nine pictures")
    composer.press("Enter")
    toast(page, "9 files are attached but a message may carry at most 8")
    page.locator("#composer .thumbnail-item button").first.wait_for()
    for _ in files:
        page.locator("#composer .thumbnail-item button").first.click()

    set_max_new_tokens(page, 4)
    send(page, "A question to rename")
    page.get_by_text("Rename or delete").click()
    title = page.locator("#conversation-title textarea, #conversation-title input").first
    title.fill("   ")
    page.get_by_role("button", name="Rename", exact=True).click()
    toast(page, "A conversation needs a name; type at least one character.")
    shot(page, "rejection-blank-rename", full_page=False)

    # The same browser in a second tab deletes the conversation; acting on it here says so.
    other = page.context.new_page()
    open_app(other, app.url)
    other.get_by_text("Rename or delete").click()
    other.get_by_role("button", name="Delete", exact=True).click()
    other.get_by_role("button", name="Delete for good", exact=True).click()
    toast(other, "The conversation was deleted.")
    title.fill("A new name")
    page.get_by_role("button", name="Rename", exact=True).click()
    toast(page, "This conversation was not found; it may have been deleted.")
    shot(page, "rejection-deleted-elsewhere", full_page=False)
    page.context.close()


@pytest.mark.browser
def test_a_message_with_an_image_and_a_video_can_be_edited(
    app: RunningApp,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = new_page(browser, app)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    set_max_new_tokens(page, 4)
    attach(page, [write_png(tmp_path / "red.png", (200, 40, 40)), write_mp4(tmp_path / "clip.mp4")])
    send(page, "Describe them")
    page.get_by_test_id("user").get_by_text("Describe them").hover()
    page.locator("#chatbot").get_by_role("button", name="Edit").click()

    # The edit box spans the chat; Shift+Enter is a new line and Enter submits.
    box = page.locator("#chatbot textarea.edit-textarea")
    share = box.bounding_box()["width"] / page.locator("#chatbot").bounding_box()["width"]
    box.fill("Describe the picture")
    box.press("Shift+Enter")
    box.type("and the clip")
    shot(page, "edit-with-media", full_page=False)
    box.press("Enter")
    wait_until(lambda: user_texts(page)[-1:] == [EDITED], "the edited text is shown")
    wait_until(lambda: composer_ready(page) and page.get_by_test_id("bot").count() == 1, "it is answered")
    wait_until(lambda: media_shown(page) == (1, 1), "the picture and the clip are still shown")
    captions = ["Image 1 · red.png", "Image 2 · clip.mp4"]
    wait_until(lambda: image_labels(page) == captions, "both are captioned")
    assert errors == []
    assert share > 0.8
    page.reload()
    loaded(page)
    wait_until(lambda: user_texts(page)[-1:] == [EDITED], "the edit was saved")
    wait_until(lambda: media_shown(page) == (1, 1), "the picture and the clip are back")
    page.context.close()


def image_labels(page: Any) -> list[str]:
    """The caption drawn over each image or video in the user's messages, in order."""
    return page.locator("#chatbot [data-testid=user] [data-testid=block-label]").all_inner_texts()


def labels_above_their_images(page: Any) -> bool:
    """Every caption is visible, right above its own picture, and covers none of it."""
    bubbles = page.locator("#chatbot [data-testid=user]").filter(has=page.locator("img"))
    for bubble in bubbles.all():
        caption, picture = bubble.get_by_test_id("block-label"), bubble.locator("img")
        if not caption.is_visible():
            return False
        box, under = caption.bounding_box(), picture.bounding_box()
        above = box["y"] + box["height"] <= under["y"] + 1 and under["y"] - box["y"] < 3 * box["height"]
        beside = box["x"] < under["x"] + under["width"] and under["x"] < box["x"] + box["width"]
        if not (above and beside):
            return False
    return True


@pytest.mark.browser
def test_images_are_labelled_with_the_number_the_model_reads_across_turns(
    app: RunningApp,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
    open_app(page, app.url)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    set_max_new_tokens(page, 4)
    colours = {"a": (200, 40, 40), "b": (40, 160, 60), "c": (40, 60, 200)}
    pictures = {name: write_png(tmp_path / f"{name}.png", colour) for name, colour in colours.items()}
    attach(page, [pictures["a"], pictures["b"]])
    send(page, "Compare them")
    attach(page, [pictures["c"]])
    send(page, "And this")
    expected = ["Image 1 · a.png", "Image 2 · b.png", "Image 3 · c.png"]
    wait_until(lambda: image_labels(page) == expected, "each image shows its number and name")
    shot(page, "labels-across-turns", full_page=False)
    assert labels_above_their_images(page)

    # Editing the second message: the edit box holds the user's words only, and the labels stay.
    page.get_by_test_id("user").get_by_text("And this").hover()
    page.locator("#chatbot").get_by_role("button", name="Edit").last.click()
    box = page.locator("#chatbot textarea.edit-textarea")
    assert [area.input_value() for area in box.all()] == ["And this"]
    shot(page, "labels-edit-box", full_page=False)
    box.fill("And this blue one?")
    box.press("Enter")
    wait_until(lambda: user_texts(page)[-1:] == ["And this blue one?"], "the edited text is shown")
    wait_until(lambda: composer_ready(page) and page.get_by_test_id("bot").count() == 2, "it is answered")
    wait_until(lambda: image_labels(page) == expected, "the labels stay")
    shot(page, "labels-edited", full_page=False)

    # A refused edit (a message with no image emptied) says why and leaves the chat as it was.
    send(page, "Thanks")
    page.get_by_test_id("user").get_by_text("Thanks").hover()
    page.locator("#chatbot").get_by_role("button", name="Edit").last.click()
    box.fill("")
    box.press("Enter")
    toast(page, "The message is empty; type a question or attach an image or a video.")
    wait_until(lambda: box.count() == 0, "the edit box is closed")
    kept = ["Image 3 · c.png", "And this blue one?", "Thanks"]
    wait_until(lambda: user_texts(page)[-3:] == kept, "the refused edit left the chat as it was")
    wait_until(lambda: page.locator("#chatbot span.error").count() == 0, "the chat shows no error state")
    shot(page, "labels-refused-edit", full_page=False)
    assert image_labels(page) == expected
    assert labels_above_their_images(page)
    page.get_by_test_id("user").get_by_text("Thanks").hover()
    page.locator("#chatbot").get_by_role("button", name="Edit").last.click()
    box.fill("Thanks a lot")
    box.press("Enter")
    wait_until(lambda: user_texts(page)[-1:] == ["Thanks a lot"], "a later edit still works")
    wait_until(lambda: composer_ready(page) and page.get_by_test_id("bot").count() == 3, "it is answered")
    wait_until(lambda: image_labels(page) == expected, "the labels stay")
    assert errors == []
    page.reload()
    loaded(page)
    wait_until(lambda: image_labels(page) == expected, "the labels are back after a reload")
    page.context.close()


def paste(page: Any, text: str) -> None:
    """Paste as the browser does: Gradio's composer turns text over its plain-text length into a file."""
    page.locator("#composer textarea").evaluate(
        """(box, text) => {
          const data = new DataTransfer();
          data.setData("text/plain", text);
          const options = {clipboardData: data, bubbles: true, cancelable: true};
          box.dispatchEvent(new ClipboardEvent("paste", options));
        }""",
        text,
    )


@pytest.mark.browser
def test_pasted_text_and_text_files_become_text_of_the_message(
    app: RunningApp,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = new_page(browser, app)
    set_max_new_tokens(page, 4)
    composer = page.locator("#composer textarea")

    # Over the text limit, a paste becomes an attachment; sending it says why it cannot go.
    paste(page, "y" * 25_000)
    wait_until(lambda: page.locator("#composer .thumbnail-item").count() == 1, "the paste is attached")
    composer.press("Enter")
    toast(page, "With the text of 'pasted_text.txt' the message is 25,")
    toast(page, "characters long, over the limit of 20,000")
    shot(page, "pasted-too-long", full_page=False)
    page.locator("#composer .thumbnail-item button").first.click()

    # A text file attached on purpose is quoted into the message with its name.
    notes = tmp_path / "notes.md"
    notes.write_text("Buy milk\nCall Ana\n", encoding="utf-8")
    attach(page, [notes])
    composer.fill("What is on my list?")
    composer.press("Enter")
    page.get_by_test_id("user").get_by_text("Call Ana").wait_for()
    page.get_by_test_id("user").get_by_text("notes.md:").wait_for()
    wait_until(lambda: composer_ready(page), "the answer is done")
    shot(page, "text-file-quoted", full_page=False)
    page.context.close()


@pytest.mark.browser
def test_dollar_amounts_stay_text_and_display_maths_renders(
    app: RunningApp,
    browser: Any,  # noqa: F811
) -> None:
    page = new_page(browser, app)
    set_max_new_tokens(page, 4)
    composer = page.locator("#composer textarea")
    composer.fill("The apples cost $5 and the pears cost $10; is $$x^2$$ or \\(y\\) maths?")
    composer.press("Enter")
    user = page.get_by_test_id("user").last
    user.get_by_text("The apples cost $5 and the pears cost $10").wait_for()
    wait_until(lambda: composer_ready(page), "the answer is done")
    assert user.locator(".katex").count() == 2
    shot(page, "dollars-and-maths", full_page=False)
    page.context.close()


@pytest.mark.browser
def test_delete_asks_first_and_the_trash_icon_deletes_nothing(
    app: RunningApp,
    browser: Any,  # noqa: F811
) -> None:
    page = new_page(browser, app)
    set_max_new_tokens(page, 4)
    send(page, "Keep this one")
    assert page.locator("#chatbot").get_by_role("button", name="Clear").is_hidden()
    page.get_by_text("Rename or delete").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text("This cannot be undone.").wait_for()
    shot(page, "delete-asks", full_page=False)
    page.get_by_role("button", name="Keep it", exact=True).click()
    page.reload()
    loaded(page)
    page.locator("#conversation-list").get_by_text("Keep this one").wait_for()
    page.get_by_text("Rename or delete").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete for good", exact=True).click()
    toast(page, "The conversation was deleted.")
    wait_until(lambda: page.locator("#conversation-list label").count() == 0, "it is gone from the list")
    page.context.close()


def version_button(page: Any, label: str) -> Any:
    return page.locator("#chatbot .options").get_by_role("button", name=label, exact=True)


@pytest.mark.browser
def test_a_retry_keeps_the_earlier_answer_and_the_user_flips_between_them(
    app: RunningApp,
    browser: Any,  # noqa: F811
) -> None:
    page = new_page(browser, app)
    set_max_new_tokens(page, 4)
    send(page, "Answer me twice")
    first = last_answer(page)
    assert page.locator("#chatbot .options").count() == 0

    # A longer answer this time, so the two versions cannot be the same text.
    set_max_new_tokens(page, 12)
    page.get_by_test_id("bot").last.hover()
    page.get_by_role("button", name="Retry").last.click()
    version_button(page, "2/2").wait_for()
    wait_until(lambda: composer_ready(page), "the new answer is complete")
    second = last_answer(page)
    assert second != first and page.get_by_test_id("bot").count() == 1
    shot(page, "answer-version-2-of-2", full_page=False)

    version_button(page, "‹").click()
    version_button(page, "1/2").wait_for()
    wait_until(lambda: last_answer(page) == first, "the first answer is shown again")
    assert page.get_by_test_id("bot").count() == 1
    shot(page, "answer-version-1-of-2", full_page=False)

    page.reload()
    loaded(page)
    version_button(page, "1/2").wait_for()
    wait_until(lambda: last_answer(page) == first, "the shown version was saved")
    version_button(page, "›").click()
    wait_until(lambda: last_answer(page) == second, "the second answer is back")
    page.context.close()
