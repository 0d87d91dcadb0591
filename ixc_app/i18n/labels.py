"""The page's static text, by key: key -> (English, Chinese). Gradio's frontend shows the one of the page's
language (`ui.language.word`); keys are dotted names that no plain value shown on the page could equal, since
the frontend also translates any plain string that happens to be a key."""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    "app.language": ("Language", "语言"),
}
