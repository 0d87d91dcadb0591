"""The composer in a real browser on the tiny checkpoint: compose an illustrated article, edit a paragraph,
swap an image, undo, export; and no script in model or user text ever runs (a dialog listener would see it).
Screenshots of each step go to `test-artifacts/`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compose_fakes import start_composer
from test_browser import CHROMIUM_ARGS, browser, open_app, shot, wait_until  # noqa: F401 (the fixture)

from ixc_app.compose.article import DONE, Article

pytestmark = pytest.mark.browser
ATTACK = '<img src=x onerror="alert(1)"><script>alert(2)</script>[x](javascript:alert(3))'


@pytest.fixture(scope="module")
def composer(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[Any]:
    running = start_composer(
        tmp_path_factory.mktemp("app"), tmp_path_factory.mktemp("library"), engine, images=12
    )
    yield running
    running.close()


def current(app: Any) -> Article:
    """The one article the browser composed."""
    service = app.services.compose
    (owner,) = {key[1] for key in service.store._cache.iterkeys() if key[0] == "index"}
    (summary,) = service.articles(owner)
    return service.open(owner, summary.id)


def preview_images(page: Any) -> list[str]:
    return [img.get_attribute("src") for img in page.locator("#article-preview img").all()]


def set_number(page: Any, selector: str, value: int) -> None:
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def test_compose_edit_swap_undo_export(composer: Any, browser: Any) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_app(page, composer.url)
    page.get_by_role("tab", name="Composer").click()
    page.locator("#article-list").get_by_text("Your articles will be listed here.").wait_for()
    page.locator("#compose-instruction textarea").fill("写一篇关于西湖春天的游记。")
    page.get_by_label("Outline first, then write").uncheck()
    page.get_by_text("Writing settings").click()
    set_number(page, "#compose-max-tokens", 160)
    shot(page, "compose-1-request")

    page.locator("#compose").click()
    page.locator("#compose-status").get_by_text("The article is ready").wait_for(timeout=180_000)
    wait_until(lambda: len(preview_images(page)) >= 1, "the article shows its images")
    article = current(composer)
    assert article.stage == DONE and len(preview_images(page)) == len(article.image_keys)
    shot(page, "compose-2-composed")

    # Edit a paragraph by hand, with text that would run script if it were not sanitised.
    set_number(page, "#edit-paragraph", 1)
    page.locator("#edit-action").get_by_text("replace_text").click()
    page.locator("#edit-text textarea").fill("改过的第一段。" + ATTACK)
    page.locator("#edit-apply").click()
    page.locator("#article-preview").get_by_text("改过的第一段。").wait_for()
    shot(page, "compose-3-edited")
    page.wait_for_timeout(500)
    assert dialogs == [], "script in the paragraph ran in the preview"

    # Swap an image: open the paragraph that has one and pick another candidate from the gallery.
    # (The random-weight model writes a different number of slots each run: take the first slot that has a
    # candidate no paragraph uses.)
    composed = current(composer)
    slot, other = next(
        (i, c)
        for i, p in enumerate(composed.paragraphs)
        if p.figure and p.figure.key
        for c, k in enumerate(p.figure.candidates or ())
        if k not in composed.image_keys
    )
    figure = composed.paragraphs[slot].figure
    before = preview_images(page)
    set_number(page, "#edit-paragraph", slot + 1)
    wait_until(lambda: page.locator("#edit-gallery img").count() > 1, "the candidates are shown")
    page.locator("#edit-gallery img").nth(other).click()
    wait_until(lambda: preview_images(page) != before, "the preview shows the new image")
    assert current(composer).paragraphs[slot].figure.key == figure.candidates[other]
    shot(page, "compose-4-swapped")

    # Undo brings the first image back.
    page.locator("#edit-undo").click()
    wait_until(lambda: preview_images(page) == before, "undo restores the image")
    assert current(composer).paragraphs[slot].figure.key == figure.key

    # Export the self-contained HTML file; open it too: nothing in it runs.
    page.locator("#export").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.count("data:image/png;base64,") == len(current(composer).image_keys)
    shot(page, "compose-5-exported")
    viewer = context.new_page()
    viewer.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    viewer.set_content(exported)
    viewer.get_by_text("改过的第一段。").wait_for()
    assert viewer.locator("img").count() == len(current(composer).image_keys)
    shot(viewer, "compose-6-export-opened")
    assert dialogs == [], "script in the paragraph ran in the exported file"

    # After a reload the article is listed and reopened.
    page.reload()
    page.get_by_role("tab", name="Composer").click()
    page.locator("#article-preview").get_by_text("改过的第一段。").wait_for()
    assert dialogs == []
    context.close()
