"""The typed errors a user can act on, and their translation into Gradio errors that carry the one sentence.

Use cases and engines raise their own typed errors, each with a message written for the user; this is the
one place that decides which of them reach the page (or an API client) verbatim. Anything else is a bug: it
is logged with its traceback and Gradio shows its generic error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import gradio as gr

from ixc_app.chat import ContextBudgetExceeded, ConversationError
from ixc_app.chat.service import InputRejected
from ixc_app.compose.article_store import ArticleNotFound
from ixc_app.compose.errors import ComposeFailed, ComposeRejected
from ixc_app.engines.base import EngineError
from ixc_app.media import MediaNotFound, MediaRejected
from ixc_app.store import ConversationNotFound
from ixc_app.ui.identity import MissingSession, UnknownHandle

log = logging.getLogger(__name__)

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
