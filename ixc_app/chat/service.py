"""The chat's use cases, shared by the browser UI and the `/chat` API: check, ingest, answer, persist.

No gradio here: front ends translate the typed errors into their own (the UI's `ui.errors`). Every limit is
checked before the engine is called, and the conversation is saved when an answer starts and again when it
ends, however it ends (finished, stopped, failed), so a user's message is never lost and a failed answer can
be retried. The final save merges the answer into the conversation as stored then, so a Delete, Rename,
Like, edit or undo made while the answer streamed is not undone by it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ixc_app.chat import (
    ChatSettings,
    Conversation,
    MediaItem,
    PreparedRequest,
    add_user_message,
    append_answer,
    fail_answer,
    finish_answer,
    ingest_upload,
    new_conversation,
    start_answer,
    to_chatbot,
    to_request,
)
from ixc_app.chat.runner import EngineRunner
from ixc_app.config import Settings
from ixc_app.engines.base import EngineCapabilities, EngineError, Finished
from ixc_app.ixc.prompt import IMAGE_PLACEHOLDER
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.store import ConversationNotFound, ConversationSummary, Store

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
UNEXPECTED_FAILURE = "The model failed while answering (the details are in the server log); try again."


class InputRejected(ValueError):
    """A message the app will not send to the model; the text is one sentence for the user."""


class AnswerFailed(RuntimeError):
    """The engine failed; the conversation was saved with the partial answer and this reason."""


@dataclass(frozen=True)
class Draft:
    """A message the user is sending: its text and the uploaded files (paths in Gradio's upload cache)."""

    text: str
    files: tuple[str, ...] = ()


class ChatService:
    def __init__(self, settings: Settings, runner: EngineRunner, store: Store) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.runner = runner
        self.store = store

    @property
    def tokenizer(self) -> Tokenizer:
        return self.runner.engine.tokenizer

    @property
    def capabilities(self) -> EngineCapabilities:
        return self.runner.engine.capabilities

    def default_settings(self) -> ChatSettings:
        return ChatSettings(
            hd_num_single=self.settings.hd_num_single, hd_num_multi=self.settings.hd_num_multi
        )

    def media_path(self, key: str) -> Path:
        return self.store.media.path(key)

    def chatbot(self, conv: Conversation | None) -> list[dict]:
        return [] if conv is None else to_chatbot(conv, self.media_path)

    def conversations(self, owner: str) -> list[ConversationSummary]:
        return self.store.list(owner)

    def open(self, owner: str, conversation_id: str) -> Conversation:
        conv = self.store.get(owner, conversation_id)
        if conv is None:
            raise ConversationNotFound()
        return conv

    def open_or_new(self, owner: str, conversation_id: str, settings: ChatSettings) -> Conversation:
        """The conversation to send to: the one named (with these settings), or a new one when none is."""
        if not conversation_id:
            return new_conversation(owner, settings)
        return replace(self.open(owner, conversation_id), settings=settings)

    def check_draft(self, draft: Draft, conv: Conversation | None) -> None:
        """The limits that need no file to be read: text length and how many files."""
        limits = self.limits
        if not user_text(draft.text).strip() and not draft.files:
            raise InputRejected("The message is empty; type a question or attach an image or a video.")
        if len(draft.text) > limits.max_text_chars:
            raise InputRejected(
                f"The message is {len(draft.text):,} characters long, over the limit of "
                f"{limits.max_text_chars:,}; shorten it or split it over several messages."
            )
        if len(draft.files) > limits.max_files_per_message:
            raise InputRejected(
                f"{len(draft.files)} files are attached but a message may carry at most "
                f"{limits.max_files_per_message}; send them over several messages."
            )
        already = len(conv.media) if conv is not None else 0
        if already + len(draft.files) > limits.max_files_per_conversation:
            raise InputRejected(
                f"This conversation already holds {already} images and videos and may hold at most "
                f"{limits.max_files_per_conversation}; start a new conversation for these files."
            )

    def ingest(self, files: Sequence[str], progress: Progress | None = None) -> tuple[MediaItem, ...]:
        """Validate and store each uploaded file (sniffed by content; videos decoded to their frame strip)."""
        items = []
        for i, path in enumerate(files):
            step = _sub_progress(progress, i, len(files)) if progress else None
            items.append(ingest_upload(self.store.media, path, self.limits, progress=step))
        return tuple(items)

    def add_message(
        self, conv: Conversation, text: str, media: tuple[MediaItem, ...]
    ) -> tuple[Conversation, PreparedRequest]:
        """Append the user's message and save it, after checking that it fits the context budget.

        Reading the attachments can take seconds (a video is decoded), so the stored conversation is read
        again first: a rename made meanwhile is kept, and a conversation deleted meanwhile is not revived.
        """
        stored = self.store.get(conv.owner, conv.id)
        if stored is not None:
            conv = replace(stored, settings=conv.settings)
        elif conv.messages:
            raise InputRejected(
                "This conversation was deleted while the message was being prepared; start a new "
                "conversation and send it again."
            )
        conv = add_user_message(conv, user_text(text), media)
        prepared = self.prepare(conv)
        self.store.put(conv)
        return conv, prepared

    def prepare(self, conv: Conversation) -> PreparedRequest:
        """The engine request for the conversation's last message, trimmed to what the engine can hold."""
        return to_request(
            conv,
            self.tokenizer,
            self.media_path,
            context_budget=min(self.limits.context_budget, self.capabilities.context_length),
            max_new_tokens_cap=self.limits.max_new_tokens,
        )

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Forget the conversation (the engine's caches of it age out on their own)."""
        return self.store.delete(owner, conversation_id)

    def answer(self, conv: Conversation, prepared: PreparedRequest) -> Iterator[Conversation]:
        """Stream the answer to the conversation's last user message, yielding the conversation so far.

        Closing the iterator stops the engine; the conversation is then saved with the partial answer marked
        as stopped. Engine failures are saved with their reason and raised as `AnswerFailed`.
        """
        started = start_answer(conv)
        self.store.put(started)
        text, finished, error = "", None, None
        stream = self.runner.stream(prepared.request)
        try:
            for snapshot in stream:
                text, finished = snapshot.text, snapshot.finished
                yield append_answer(started, text)
        except EngineError as exc:
            error = str(exc)
        except Exception:
            log.exception("the engine failed on conversation %s", conv.id)
            error = UNEXPECTED_FAILURE
        finally:
            stream.close()
            final = _settle(append_answer(started, text), finished, error, prepared.dropped_messages)
            final = self._save_answer(started, final)
            log.info(
                "conversation %s: answer %s, %d characters%s",
                conv.id,
                final.messages[-1].finish,
                len(text),
                f", {finished.generated_tokens} tokens in {finished.total_s:.2f} s" if finished else "",
            )
        if error:
            raise AnswerFailed(error)
        yield final

    def _save_answer(self, started: Conversation, answered: Conversation) -> Conversation:
        """Put the answer into the conversation as stored now, keeping what changed while it streamed.

        A deleted conversation stays deleted; a renamed or liked one keeps its title and feedback; one whose
        messages were edited or undone meanwhile is left alone. Returns the conversation as it ends up.
        """
        stored = self.store.get(started.owner, started.id)
        if stored is None or _turns(stored) != _turns(started):
            return answered
        answer = replace(answered.messages[-1], feedback=stored.messages[-1].feedback)
        merged = replace(stored, messages=(*stored.messages[:-1], answer), updated=answered.updated)
        self.store.put(merged)
        return merged


def _turns(conv: Conversation) -> list[tuple[str, str, tuple[MediaItem, ...]]]:
    """What a conversation says, ignoring feedback and the text of the answer being streamed."""
    turns = [(m.role, m.text, m.media) for m in conv.messages]
    if turns and turns[-1][0] == "assistant":
        turns[-1] = ("assistant", "", ())
    return turns


def user_text(text: str) -> str:
    """The text a user typed, without `<ImageHere>`: in chat the app places the images, not the user."""
    while IMAGE_PLACEHOLDER in text:
        text = text.replace(IMAGE_PLACEHOLDER, "")
    return text


def _settle(conv: Conversation, finished: Finished | None, error: str | None, dropped: int) -> Conversation:
    if error:
        return fail_answer(conv, error)
    if finished is None:
        return replace(conv, messages=(*conv.messages[:-1], replace(conv.messages[-1], finish="cancelled")))
    return finish_answer(conv, finished, dropped_messages=dropped)


def _sub_progress(progress: Progress, index: int, count: int) -> Progress:
    def report(fraction: float, desc: str) -> None:
        prefix = f"File {index + 1} of {count}: " if count > 1 else ""
        progress((index + fraction) / count, prefix + desc)

    return report
