"""The chat's use cases, shared by the browser UI and the `/chat` API: check, ingest, answer, persist.

No gradio here: front ends translate the typed errors into their own (the UI's `ui.errors`). Every limit is
checked before the engine is called. An answer runs in a server-side task (`chat.answers`) that outlives the
page that asked for it; the conversation is saved when the answer starts, every `SAVE_INTERVAL_S` while it
streams, and when it ends, however it ends (finished, stopped, failed), so a user's message is never lost, a
crash loses only the last seconds of an answer (marked "interrupted" on the next start), and a failed answer
can be retried. Each save merges the answer into the conversation as stored then, so a Delete, Rename, Like,
edit or undo made while the answer streamed is not undone by it. A conversation answers one message at a
time: a second message while it answers is refused with a sentence.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ixc_app.chat import (
    ChatSettings,
    ContextBudgetExceeded,
    Conversation,
    MediaItem,
    PreparedRequest,
    add_user_message,
    append_answer,
    fail_answer,
    finish_answer,
    ingest_upload,
    new_conversation,
    show_version,
    start_answer,
    to_chatbot,
    to_request,
)
from ixc_app.chat.answers import AnswerBusy, AnswerTask, AnswerTasks
from ixc_app.chat.drafts import Draft, InputRejected, busy, check_limits
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.text import user_text
from ixc_app.chat.transfer import export_archive, import_archive
from ixc_app.chat.versions import put_back_waiting, still_writing
from ixc_app.config import Settings
from ixc_app.engines.base import EngineCapabilities, EngineError, Finished
from ixc_app.i18n import tr
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.store import ConversationNotFound, ConversationSummary, Store

log = logging.getLogger(__name__)

FileProgress = Callable[[int, float, str], None]
"""`progress(file index, fraction of that file, step)`: see `chat.ingest.Progress`."""
SAVE_INTERVAL_S = 2.0
"""How often an answer that is streaming is saved: what a crash can lose of it."""


class AnswerFailed(RuntimeError):
    """The engine failed; the conversation was saved with the partial answer and this reason."""


class ChatService:
    def __init__(
        self, settings: Settings, runner: EngineRunner, store: Store, preferences: Preferences
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.runner = runner
        self.store = store
        self.preferences = preferences
        self.answers = AnswerTasks()
        self._mark_interrupted()

    @property
    def tokenizer(self) -> Tokenizer:
        return self.runner.engine.tokenizer

    @property
    def capabilities(self) -> EngineCapabilities:
        return self.runner.engine.capabilities

    def default_settings(self, owner: str | None = None) -> ChatSettings:
        """What a new conversation starts with: the owner's last settings, else the app's defaults."""
        app_defaults = ChatSettings(
            hd_num_single=self.settings.hd_num_single, hd_num_multi=self.settings.hd_num_multi
        )
        return app_defaults if owner is None else self.preferences.settings(owner, app_defaults)

    def remember_settings(self, owner: str, conversation_id: str, settings: ChatSettings) -> None:
        """Settings the user just changed: the open conversation keeps them (if one is open) and they
        become the owner's defaults for new conversations."""
        self.preferences.remember(owner, settings)
        if conversation_id:
            self.store.update(owner, conversation_id, lambda conv: replace(conv, settings=settings))

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
        if conv is not None and self.answering(conv.owner, conv.id):
            raise busy()
        check_limits(draft, len(conv.media) if conv is not None else 0, self.limits)

    def ingest(self, files: Sequence[str], progress: FileProgress | None = None) -> tuple[MediaItem, ...]:
        """Validate and store each uploaded file (sniffed by content; videos decoded to their frame strip),
        each only if the data dir has room for it (`StorageFull` otherwise). A front end removes its raw
        uploads once read, so a file sent again after a refusal may be gone: that gets a sentence.

        `progress(index, fraction, step)` hears how far each file is and may raise to give up (a Stop). Given
        up or refused, the ingest takes back what it stored anew of these files: nothing of a message that is
        not sent stays stored."""
        added: list[str] = []
        items = []
        try:
            for i, path in enumerate(files):
                step = functools.partial(progress, i) if progress else None
                if not Path(path).is_file():
                    gone = tr("'{name}' is no longer on the server; attach it again.", name=Path(path).name)
                    raise InputRejected(gone)
                self.store.make_room(Path(path).stat().st_size)
                items.append(ingest_upload(self.store.media, path, self.limits, progress=step, added=added))
        except BaseException:
            self.store.delete_unreferenced(added)
            raise
        return tuple(items)

    def add_message(
        self, conv: Conversation, text: str, media: tuple[MediaItem, ...]
    ) -> tuple[Conversation, PreparedRequest]:
        """Append the user's message and save it, after checking that it fits the context budget.

        Reading the attachments can take seconds (a video is decoded), so the stored conversation is read
        again first: a rename made meanwhile is kept, and a conversation deleted meanwhile is not revived.
        Refused, the media read for it go again unless something else refers to them (as `ingest` does when
        it is given up), so nothing of a message that is not sent stays stored.
        """
        try:
            return self._add_message(conv, text, media)
        except (InputRejected, ContextBudgetExceeded):
            self.store.delete_unreferenced(key for item in media for key in item.keys)
            raise

    def _add_message(
        self, conv: Conversation, text: str, media: tuple[MediaItem, ...]
    ) -> tuple[Conversation, PreparedRequest]:
        with self.answers.lock:
            if self.answering(conv.owner, conv.id):
                raise busy()
            stored = self.store.get(conv.owner, conv.id)
            if stored is not None:
                conv = replace(stored, settings=conv.settings)
            elif conv.messages:
                raise InputRejected(
                    tr(
                        "This conversation was deleted while the message was being prepared; start a new "
                        "conversation and send it again."
                    )
                )
            if any(self.store.media.get(key) is None for item in media for key in item.keys):
                raise InputRejected(
                    tr(
                        "An attached file was removed while the message was being prepared (its "
                        "conversation was deleted); attach it again."
                    )
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

    def export(self, owner: str, conversation_id: str, folder: Path) -> Path:
        """The conversation as a zip in `folder` (`chat.transfer`), for its user to keep."""
        return export_archive(self.open(owner, conversation_id), self.store.media, folder)

    def import_conversation(self, owner: str, archive: Path) -> Conversation:
        """An exported conversation as a new conversation of `owner`, its media validated like uploads."""
        self.store.make_room(archive.stat().st_size)
        conv = import_archive(archive, owner, self.store.media, self.limits)
        self.store.put(conv)
        return conv

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Stop its answer, if one is running, and forget the conversation (the engine's caches of it age
        out on their own)."""
        self.answers.stop(owner, conversation_id)
        return self.store.delete(owner, conversation_id)

    def settled(self, owner: str, conversation_id: str) -> Conversation | None:
        """The conversation as saved (None if there is none). A retry's empty answer that no task writes (it
        was stopped or left while it waited for the engine) is put back to the version shown before it, and
        saved so, rather than stay an empty answer nothing will finish."""
        with self.answers.lock:
            conv = self.store.get(owner, conversation_id)
            if conv is None or self.answers.get(owner, conversation_id) is not None:
                return conv
            restored = put_back_waiting(conv)
            if restored is not conv:
                self.store.put(restored)
            return restored

    def answering(self, owner: str, conversation_id: str) -> AnswerTask | None:
        """The answer the conversation is writing now, if any."""
        return self.answers.get(owner, conversation_id)

    def stop(self, owner: str, conversation_id: str) -> bool:
        """Stop the conversation's answer (it is saved as stopped); False when none is running."""
        return self.answers.stop(owner, conversation_id)

    def show_version(self, owner: str, conversation_id: str, version: int) -> Conversation:
        """Show another version of the last answer, saved (`chat.conversation.show_version`). Refused while
        the conversation answers: the answer being written is that last message, and its save would undo
        the switch."""
        with self.answers.lock:
            if self.answering(owner, conversation_id):
                raise InputRejected(still_writing())
            conv = self.store.update(owner, conversation_id, lambda conv: show_version(conv, version))
        if conv is None:
            raise ConversationNotFound()
        return conv

    def start(self, conv: Conversation, prepared: PreparedRequest) -> AnswerTask:
        """Start answering the conversation's last user message in a server-side task and return it; the
        answer runs to its end (or Stop) whoever follows it. `InputRejected` if one is running already."""
        with self.answers.lock:
            if self.answering(conv.owner, conv.id):
                raise busy()
            started = start_answer(conv)
            self.store.put(started)
            try:
                return self.answers.start(started, lambda task: self._write(task, prepared))
            except AnswerBusy as exc:
                raise busy() from exc

    def answer(self, conv: Conversation, prepared: PreparedRequest) -> Iterator[Conversation]:
        """Start the answer (`InputRejected` at once if one is running) and follow it as its owner (`own`)."""
        return self.own(self.start(conv, prepared))

    def own(self, task: AnswerTask) -> Iterator[Conversation]:
        """Follow an answer for a caller that owns it (the `/chat` API), yielding the conversation so far,
        the saved one last: closing the iterator stops the answer, which is saved as stopped. Engine
        failures are saved with their reason and raised as `AnswerFailed`."""
        try:
            yield from task.follow()
        finally:
            if not task.done:
                task.stop.set()
        if task.error:
            raise AnswerFailed(task.error)

    def _write(self, task: AnswerTask, prepared: PreparedRequest) -> tuple[Conversation, str | None]:
        """The body of an answer task: stream, publish, save every `SAVE_INTERVAL_S`, settle and save."""
        started = task.latest
        text, finished, error = "", None, None
        saved_at = time.monotonic()
        stream = self.runner.stream(prepared.request)
        try:
            for snapshot in stream:
                text, finished = snapshot.text, snapshot.finished
                task.publish(append_answer(started, text))
                if task.stop.is_set():
                    break
                if time.monotonic() - saved_at >= SAVE_INTERVAL_S:
                    self._save_answer(started, append_answer(started, text))
                    saved_at = time.monotonic()
        except EngineError as exc:
            error = str(exc)
        except Exception:
            log.exception("the engine failed on conversation %s", started.id)
            error = tr("The model failed while answering (the details are in the server log); try again.")
        finally:
            stream.close()
        final = _settle(append_answer(started, text), finished, error, prepared.dropped_messages)
        final = self._save_answer(started, final)
        log.info(
            "conversation %s: answer %s, %d characters%s",
            started.id,
            final.messages[-1].finish,
            len(text),
            f", {finished.generated_tokens} tokens in {finished.total_s:.2f} s" if finished else "",
        )
        return final, error

    def _mark_interrupted(self) -> None:
        """Answers left streaming by a process that died (kill -9, a crash): keep what was saved of them,
        marked interrupted, so the page shows it with Retry instead of an endless empty answer."""
        for owner, conversation_id in self.store.streaming():
            conv = self.store.get(owner, conversation_id)
            if conv is None or not _is_streaming(conv):
                continue
            last = replace(conv.messages[-1], finish="interrupted")
            self.store.put(replace(conv, messages=(*conv.messages[:-1], last)))
            log.warning(
                "conversation %s: the answer was interrupted by a restart after %d characters",
                conversation_id,
                len(last.text),
            )

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


def _is_streaming(conv: Conversation) -> bool:
    return bool(conv.messages) and conv.messages[-1].role == "assistant" and conv.messages[-1].finish is None


def _turns(conv: Conversation) -> list[tuple[str, str, tuple[MediaItem, ...]]]:
    """What a conversation says, ignoring feedback and the text of the answer being streamed."""
    turns = [(m.role, m.text, m.media) for m in conv.messages]
    if turns and turns[-1][0] == "assistant":
        turns[-1] = ("assistant", "", ())
    return turns


def _settle(conv: Conversation, finished: Finished | None, error: str | None, dropped: int) -> Conversation:
    if error:
        return fail_answer(conv, error)
    if finished is None:
        return replace(conv, messages=(*conv.messages[:-1], replace(conv.messages[-1], finish="cancelled")))
    return finish_answer(conv, finished, dropped_messages=dropped)
