"""A message the user is sending, before anything of it is read: its refusals, each one sentence for the user
in the language of the request (`ixc_app.i18n.tr`)."""

from __future__ import annotations

from dataclasses import dataclass

from ixc_app.chat.text import user_text
from ixc_app.config import Limits
from ixc_app.i18n import tr


class InputRejected(ValueError):
    """A message the app will not send to the model; the text is one sentence for the user."""


@dataclass(frozen=True)
class Draft:
    """A message the user is sending: its text and the uploaded files (paths in Gradio's upload cache)."""

    text: str
    files: tuple[str, ...] = ()


def busy() -> InputRejected:
    """The refusal of a message while the conversation still answers the previous one."""
    return InputRejected(
        tr(
            "This conversation is still answering your previous message; wait for the answer or press Stop, "
            "then send again."
        )
    )


def check_limits(draft: Draft, already: int, limits: Limits) -> None:
    """The limits that need no file to be read: text length and how many files (`already` in the
    conversation)."""
    if not user_text(draft.text).strip() and not draft.files:
        raise InputRejected(tr("The message is empty; type a question or attach an image or a video."))
    if len(draft.text) > limits.max_text_chars:
        raise InputRejected(
            tr(
                "The message is {length:,} characters long, over the limit of {limit:,}; shorten it or split "
                "it over several messages.",
                length=len(draft.text),
                limit=limits.max_text_chars,
            )
        )
    if len(draft.files) > limits.max_files_per_message:
        raise InputRejected(
            tr(
                "{count} files are attached but a message may carry at most {limit}; send them over several "
                "messages.",
                count=len(draft.files),
                limit=limits.max_files_per_message,
            )
        )
    if already + len(draft.files) > limits.max_files_per_conversation:
        raise InputRejected(
            tr(
                "This conversation already holds {already} images and videos and may hold at most {limit}; "
                "start a new conversation for these files.",
                already=already,
                limit=limits.max_files_per_conversation,
            )
        )
