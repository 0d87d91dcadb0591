"""Text as users send it, made safe to store and show: what cannot be encoded never reaches the store.

A browser or API client can send strings no UTF-8 encoder accepts (a lone surrogate from a cut emoji, a
surrogate escape), and control characters that no one types. Rather than fail deep in JSON or SQLite with a
traceback, the text is normalised once, where it enters the app: a lone surrogate becomes U+FFFD (the
replacement character a user recognises), a well-formed surrogate pair becomes its character, and control
characters other than tab and newlines are dropped.
"""

from __future__ import annotations

import re

from ixc_app.ixc.prompt import IMAGE_PLACEHOLDER

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """`text` with lone surrogates replaced, surrogate pairs joined and stray control characters removed."""
    if text.isascii():
        return _CONTROL.sub("", text)
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _CONTROL.sub("", joined)


def user_text(text: str) -> str:
    """The text a user typed, without `<ImageHere>` (in chat the app places the images, not the user) and
    with what cannot be stored normalised (`clean_text`)."""
    text = clean_text(text)
    while IMAGE_PLACEHOLDER in text:
        text = text.replace(IMAGE_PLACEHOLDER, "")
    return text
