"""The page's static files come from `assets/`: the stylesheet, the header's logo and the favicon."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from app_harness import RunningApp
from conftest import REPO_ROOT
from test_browser import browser, open_app, shot

ASSETS = REPO_ROOT / "assets"
__all__ = ["browser"]


def test_the_favicon_and_the_stylesheet_are_the_assets_files(app: RunningApp) -> None:
    favicon = httpx.get(app.url.rstrip("/") + "/favicon.ico", timeout=30)
    assert favicon.status_code == 200 and favicon.content == (ASSETS / "favicon.svg").read_bytes()
    assert favicon.headers["content-type"].startswith("image/svg+xml")
    css = httpx.get(app.url.rstrip("/") + "/config", timeout=30).json()["css"]
    assert (ASSETS / "style.css").read_text(encoding="utf-8").strip() in css
    assert base64.b64encode((ASSETS / "logo.svg").read_bytes()).decode() in css


@pytest.mark.browser
def test_the_header_shows_the_logo(browser: Any, app: RunningApp) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        open_app(page, app.url)
        heading = page.locator(".app-header h1")
        image = heading.evaluate("h => getComputedStyle(h, '::before').backgroundImage")
        assert image.startswith('url("data:image/svg+xml;base64,')
        width = heading.evaluate("h => parseFloat(getComputedStyle(h, '::before').width)")
        assert width > 0
        heading.scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "header-logo", full_page=False)
    finally:
        page.close()
