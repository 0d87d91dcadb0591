"""The typed errors a user can act on, and their translation into Gradio errors that carry the one sentence.

Use cases and engines raise their own typed errors, each with a message written for the user; this is the
one place that decides which of them reach the page (or an API client) verbatim. Anything else is a bug: it
is logged with its traceback and Gradio shows its generic error.

An error reaches the page only from a queued event: Gradio's browser client reads errors, `gr.Warning` and
`gr.Info` from the queue's event stream, while an unqueued event's error answer is dropped (the sentence
reaches only the server log, and the user sees nothing happen). Every event whose handler can refuse
something therefore uses `INSTANT`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ixc_app.chat import ContextBudgetExceeded, ConversationError
from ixc_app.chat.drafts import InputRejected
from ixc_app.compose.article_store import ArticleNotFound
from ixc_app.compose.errors import ComposeFailed, ComposeRejected
from ixc_app.engines.base import EngineError
from ixc_app.media import MediaNotFound, MediaRejected
from ixc_app.store import ConversationNotFound
from ixc_app.ui.identity import MissingSession, UnknownHandle

log = logging.getLogger(__name__)

INSTANT: dict[str, Any] = {"queue": True, "concurrency_limit": None}
"""Event options for a cheap handler that may refuse with a sentence: queued so the page shows the sentence,
with no concurrency limit so it never waits behind another user's."""

USER_FACING: tuple[type[Exception], ...] = (
    InputRejected,
    UnknownHandle,
    MissingSession,
    MediaRejected,
    MediaNotFound,
    ConversationError,
    ConversationNotFound,
    ContextBudgetExceeded,
    EngineError,
    ComposeRejected,
    ComposeFailed,
    ArticleNotFound,
)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into Gradio errors that carry their sentence verbatim."""
    try:
        yield
    except USER_FACING as exc:
        log.info("rejected: %s", exc)
        raise gr.Error(str(exc), print_exception=False) from exc
