"""Answer versions: Retry keeps the answer it replaces, and the user can show any version again.

A retried answer is a `Message` whose `versions` are the other answers to the same question; the shown one is
the message's own fields, so everything that reads a message (the model's history, the display) sees it
alone. At most `MAX_VERSIONS` are kept per answer, the oldest going first, so a conversation retried again
and again stays small enough to save while it streams and to export and import.
"""

from __future__ import annotations

from dataclasses import replace

from ixc_app.chat.conversation import Conversation, ConversationError, Message, _touch, _waiting_for_answer
from ixc_app.i18n import tr

MAX_VERSIONS = 20


def still_writing() -> str:
    """Why the shown version cannot change now, in the language of the request."""
    return tr("The answer is still being written; wait for it or press Stop, then pick another version.")


def retry(conv: Conversation, *, now: float | None = None) -> Conversation:
    """Make way for another answer to the last user message (a no-op if it has none).

    The answer it had and its earlier versions stay, to be shown again (`show_version`); the new answer will
    be the last version, streamed into the empty answer left for it (`start_answer`). A version with no text
    (it failed before its first word) has nothing to go back to and goes; with nothing kept, the answer is
    dropped. One cut short while it was written is kept as interrupted.
    """
    if not conv.messages:
        raise ConversationError(tr("There is nothing to retry; send a message first."))
    last = conv.messages[-1]
    if last.role == "user":
        return conv
    kept = tuple(replace(v, finish=v.finish or "interrupted") for v in last.all_versions if v.text)
    kept = kept[len(kept) - MAX_VERSIONS + 1 :] if len(kept) >= MAX_VERSIONS else kept
    if not kept:
        return _touch(conv, conv.messages[:-1], now)
    waiting = Message(role="assistant", text="", versions=kept, version=len(kept))
    return _touch(conv, (*conv.messages[:-1], waiting), now)


def put_back_waiting(conv: Conversation) -> Conversation:
    """A retry whose answer never started (stopped or left while it waited for the engine): the version shown
    before it is shown again, its versions kept, so the conversation is not left with an empty answer that
    nothing will write. Anything else is returned as it is."""
    if not _waiting_for_answer(conv) or not conv.messages[-1].versions:
        return conv
    last = conv.messages[-1]
    *others, before = last.versions
    shown = replace(last, **vars(before), versions=tuple(others), version=len(others))
    return replace(conv, messages=(*conv.messages[:-1], shown))


def show_version(conv: Conversation, version: int) -> Conversation:
    """Show version `version` (from 0, in the order written) of the last answer instead of the one shown.

    Only the last answer can be switched: the turns after an earlier one were answered with the version
    shown then in their history, and showing another would pair them with a history they never had (Open
    WebUI keeps a branch of turns per version; this app keeps one line). An earlier answer keeps its
    versions, to be switched again once the turns after it are undone.
    """
    last = conv.messages[-1] if conv.messages else None
    if last is None or last.role != "assistant":
        raise ConversationError(tr("There is no answer to show another version of; send a message first."))
    if last.finish is None:
        raise ConversationError(still_writing())
    everything = last.all_versions
    if not 0 <= version < len(everything):
        raise ConversationError(tr("That version of the answer does not exist; reload the page."))
    others = (*everything[:version], *everything[version + 1 :])
    shown = replace(last, **vars(everything[version]), versions=others, version=version)
    return replace(conv, messages=(*conv.messages[:-1], shown))
