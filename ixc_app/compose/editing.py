"""The user's edits of an illustrated article: pure functions from article to article, each undoable.

Text edits that need the model (rewrite, expand, shorten, insert) produce their text in `ComposeService`;
what they do to the article once the text exists is here, with the edits that need no model at all.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from ixc_app.compose.article import (
    Article,
    ArticleError,
    Figure,
    Paragraph,
    paragraph_at,
    set_paragraphs,
)
from ixc_app.compose.strings import say
from ixc_app.ixc.compose import MAX_PARAGRAPHS

EditAction = Literal[
    "rewrite", "expand", "shorten", "insert_before", "insert_after", "replace_text", "delete"
]
EDIT_ACTIONS: tuple[EditAction, ...] = (
    "rewrite",
    "expand",
    "shorten",
    "insert_before",
    "insert_after",
    "replace_text",
    "delete",
)


def one_paragraph(text: str) -> str:
    """Edited text stays one paragraph: its line breaks become spaces, as in the official demo."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def apply_text(article: Article, index: int, action: EditAction, text: str) -> Article:
    """Put the result of `action` on paragraph `index` (new text, or a new paragraph beside it)."""
    paragraph = paragraph_at(article, index)
    text = one_paragraph(text)
    paragraphs = list(article.paragraphs)
    if action in ("insert_before", "insert_after"):
        if not text:
            raise ArticleError(say("error.came_back_empty"))
        if len(paragraphs) >= MAX_PARAGRAPHS:
            raise ArticleError(say("error.max_paragraphs", limit=MAX_PARAGRAPHS))
        paragraphs.insert(index if action == "insert_before" else index + 1, Paragraph(text))
    elif action == "delete":
        del paragraphs[index]
    else:
        if not text:
            raise ArticleError(say("error.paragraph_empty"))
        paragraphs[index] = replace(paragraph, text=text)
    return set_paragraphs(article, tuple(paragraphs))


def move(article: Article, index: int, offset: Literal[-1, 1]) -> Article:
    """Move paragraph `index` (with its image) up or down by one."""
    paragraph_at(article, index)
    target = index + offset
    if not 0 <= target < len(article.paragraphs):
        raise ArticleError(say("error.already_first" if offset < 0 else "error.already_last", n=index + 1))
    paragraphs = list(article.paragraphs)
    paragraphs[index], paragraphs[target] = paragraphs[target], paragraphs[index]
    return set_paragraphs(article, tuple(paragraphs))


def set_figure(article: Article, index: int, figure: Figure | None) -> Article:
    paragraph = paragraph_at(article, index)
    paragraphs = list(article.paragraphs)
    paragraphs[index] = replace(paragraph, figure=figure)
    return set_paragraphs(article, tuple(paragraphs))


def pick(article: Article, index: int, key: str) -> Article:
    """Show `key` after paragraph `index` (one of its candidates, a gallery pick or an upload)."""
    current = paragraph_at(article, index).figure
    if key in article.image_keys and (current is None or current.key != key):
        raise ArticleError(say("error.image_in_article"))
    figure = current or Figure(caption="")
    candidates = figure.candidates or ()
    if key not in candidates:
        candidates = (*candidates, key)
    return set_figure(article, index, replace(figure, candidates=candidates, key=key))
