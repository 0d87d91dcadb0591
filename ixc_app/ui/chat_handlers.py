"""What each chat event does: the Gradio-facing edge of `ChatService`.

Handlers take and return component values only. Which conversation is open lives in the browser's
BrowserState (sent with every event, kept across reloads and server restarts); the server keeps per tab only
what a page's events need to agree with each other (`ui.tabs`, the reading in `ui.sending`), bounded. The
owner is the request's login, or else the BrowserState's token (`identity.Owners`, through `session`).
Errors a user can act on become `gr.Error` with their one sentence; the conversation on disk is never left
half-changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import gradio as gr

from ixc_app.chat import (
    ContextBudgetExceeded,
    Conversation,
    PreparedRequest,
    edit_user_message,
    fail_answer,
    retry,
    set_feedback,
    undo,
    with_settings,
)
from ixc_app.chat.display import pending_message
from ixc_app.chat.drafts import Draft
from ixc_app.chat.ingest import with_text_files
from ixc_app.chat.service import ChatService
from ixc_app.chat.text import user_text
from ixc_app.i18n import tr
from ixc_app.ui.errors import user_errors
from ixc_app.ui.examples import Example
from ixc_app.ui.follow import follow_answer
from ixc_app.ui.identity import BrowserSession, Owners
from ixc_app.ui.language import word
from ixc_app.ui.sending import FileState, Readers, StoppedByUser
from ixc_app.ui.settings_form import by_name, form_values, settings_from_form
from ixc_app.ui.tabs import ShownConversations, tab_of
from ixc_app.ui.textbox import busy_textbox, locked_textbox, stop_textbox, unlocked_textbox


def stopped() -> str:
    return tr(
        "Stopped: the message was not sent and none of its files were kept; its text is back in the box."
    )


def left() -> str:
    return tr("Another conversation was opened while the message's files were read, so it was not sent.")


def _dropped_notice(prepared: PreparedRequest) -> None:
    if prepared.dropped_messages:
        gr.Warning(
            tr(
                "The {count} oldest messages were left out of this answer to fit the context budget; start a "
                "new conversation to use the full budget again.",
                count=prepared.dropped_messages,
            ),
            title=tr("Context budget"),
        )


class ChatHandlers:
    def __init__(self, service: ChatService, examples: list[Example], owners: Owners) -> None:
        self.service = service
        self.examples = examples
        self.owners = owners
        self.readers = Readers()
        self.shown = ShownConversations()

    def session(self, stored: Any, request: gr.Request | None) -> BrowserSession:
        """The session the page was loaded with, owned by the request's login if any (`Owners`); only the
        page load may start a new one."""
        with user_errors():
            return self.owners.session(stored, request)

    # Views

    def chatbot(self, conv: Conversation | None, messages: list[dict] | None = None) -> gr.Chatbot:
        """The conversation in the Chatbot, or `messages` in its place (it and a pending message)."""
        feedback = (
            []
            if conv is None
            else [
                {"like": "Like", "dislike": "Dislike"}.get(m.feedback or "")
                for m in conv.messages
                if m.role == "assistant"
            ]
        )
        value = self.service.chatbot(conv) if messages is None else messages
        return gr.Chatbot(value=value, feedback_value=feedback)

    def refresh_list(self, stored: Any, request: gr.Request | None = None) -> gr.Radio:
        """The conversation list after a message was added (a new conversation gets its entry)."""
        return self.conversation_list(self.session(stored, request))

    def conversation_list(self, session: BrowserSession) -> gr.Radio:
        summaries = self.service.conversations(session.owner)
        return gr.Radio(
            choices=[(s.title, s.id) for s in summaries],
            value=session.conversation or None,
            info=None if summaries else word("chat.list_empty"),
        )

    def _view(
        self, session: BrowserSession, conv: Conversation | None, request: gr.Request | None
    ) -> tuple[Any, ...]:
        """Everything that shows which conversation is open (`ChatView.opened`), the composer unlocked: an
        answer followed in the conversation left stops being shown (`ui.tabs`), and one still written in the
        conversation opened is followed again after this (`ui.follow`)."""
        settings = conv.settings if conv is not None else self.service.default_settings(session.owner)
        self.shown.show(request, session.conversation)
        return (
            session.to_value(),
            self.conversation_list(session),
            self.chatbot(conv),
            conv.title if conv is not None else "",
            unlocked_textbox(),
            *form_values(settings),
        )

    def _current(self, session: BrowserSession) -> Conversation | None:
        if not session.conversation:
            return None
        return self.service.settled(session.owner, session.conversation)

    def _require_current(self, session: BrowserSession) -> Conversation:
        with user_errors():
            return self.service.open(session.owner, session.conversation)

    # Page and conversation list

    def load(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        """A new page: the browser's saved session, or a new owner for a browser seen for the first time."""
        session = self.owners.session_or_new(stored, request)
        conv = self._current(session)
        if conv is None:
            session = replace(session, conversation="")
        return self._view(session, conv, request)

    def new_conversation(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        session = self.session(stored, request)
        return self._view(replace(session, conversation=""), None, request)

    def switch(
        self, stored: Any, conversation_id: str | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        session = self.session(stored, request)
        conv = self.service.settled(session.owner, conversation_id) if conversation_id else None
        return self._view(replace(session, conversation=conv.id if conv else ""), conv, request)

    def rename(self, stored: Any, title: str, request: gr.Request | None = None) -> gr.Radio:
        session = self.session(stored, request)
        with user_errors():
            self.service.store.rename(session.owner, session.conversation, title)
        return self.conversation_list(session)

    def ask_delete(self) -> gr.Column:
        """Delete asks first: a deleted conversation and its media cannot be brought back."""
        return gr.Column(visible=True)

    def keep(self) -> gr.Column:
        return gr.Column(visible=False)

    def delete(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        session = self.session(stored, request)
        if session.conversation:
            self.service.delete(session.owner, session.conversation)
            gr.Info(tr("The conversation was deleted."))
        return self._view(replace(session, conversation=""), None, request)

    def remember_settings(self, stored: Any, request: gr.Request | None, *settings_values: Any) -> None:
        """A setting was changed: kept at once for the open conversation and as this user's defaults."""
        session = self.session(stored, request)
        with user_errors():
            settings = settings_from_form(by_name(settings_values), self.service.limits)
        self.service.remember_settings(session.owner, session.conversation, settings)

    # Sending a message

    def example(self, select: gr.SelectData) -> dict[str, Any]:
        """The clicked example, by its index in our own list (file paths sent by the browser are not used)."""
        index = select.index if isinstance(select.index, int) else -1
        if not 0 <= index < len(self.examples):
            raise gr.Error(tr("That example does not exist; reload the page."), print_exception=False)
        example = self.examples[index]
        return {"text": example.text, "files": [str(p) for p in example.files]}

    def validate(
        self, message: dict[str, Any] | None, stored: Any, request: gr.Request | None = None
    ) -> gr.MultimodalTextbox:
        """The checks that need no file to be read, before anything is queued."""
        session = self.session(stored, request)
        with user_errors():
            draft = self._draft(message)
            self.service.check_draft(draft, self._current(session))
        return busy_textbox()

    def ingest(
        self, message: dict[str, Any] | None, stored: Any, request: gr.Request, *settings_values: Any
    ) -> Iterator[tuple[Any, ...]]:
        """Show the message at once, with a line per attachment that follows its reading (`ui.sending`), then
        store it; the composer shows Stop meanwhile, for the reading and then for the answer. Refused or
        stopped, the chat and the composer (with the typed text) are put back before the error is raised."""
        session = self.session(stored, request)
        with user_errors():
            draft = self._draft(message)
            settings = settings_from_form(by_name(settings_values), self.service.limits)
            conv = self.service.open_or_new(session.owner, session.conversation, settings)
            self.service.check_draft(draft, conv)
        typed = (message or {}).get("text") or ""
        shown = self.service.chatbot(conv)
        reading = self.readers.start(tab_of(request), self.service.ingest, draft.files)

        def pending(states: list[FileState]) -> gr.Chatbot:
            message = pending_message(draft.text, [(state.name, state.step) for state in states])
            return self.chatbot(conv, [*shown, message])

        def here() -> bool:
            """The tab still shows this conversation; once it opened another, nothing is drawn over it."""
            return self.shown.shows(request, session.conversation)

        def still_shown() -> None:
            if not here():
                raise gr.Error(left(), visible=False, print_exception=False)

        try:
            yield stop_textbox(), pending(reading.states), gr.skip()
            for states in reading.updates():
                still_shown()
                yield gr.skip(), gr.skip() if states is None else pending(states), gr.skip()
            yield gr.skip(), pending(reading.states), gr.skip()  # a last chance to be closed before saving
            still_shown()
            with user_errors():
                try:
                    media = reading.result()
                except StoppedByUser as exc:
                    gr.Info(stopped())  # not an error: failing silently only keeps the answer from following
                    raise gr.Error(stopped(), visible=False, print_exception=False) from exc
                conv, _ = self.service.add_message(conv, draft.text, media)
        except Exception:
            if here():
                restored = {"text": typed, "files": []}
                yield unlocked_textbox(restored), self.chatbot(self._current(session)), gr.skip()
            raise
        finally:
            self.readers.end(tab_of(request), reading)
        session = replace(session, conversation=conv.id)
        self.shown.show(request, conv.id)
        yield stop_textbox(), self.chatbot(conv), session.to_value()

    def stop_reading(self, request: gr.Request) -> None:
        """Stop: the tab's message stops being read (the ingest event then puts the composer back)."""
        self.readers.stop(tab_of(request))

    def answer(self, stored: Any, request: gr.Request | None, *settings_values: Any) -> Iterator[gr.Chatbot]:
        """Start the answer to the open conversation's last message on the server and follow it (engine
        concurrency group); a reload ends only the following (`ui.follow`)."""
        session = self.session(stored, request)
        conv = self._require_current(session)
        with user_errors():
            conv = with_settings(conv, settings_from_form(by_name(settings_values), self.service.limits))
            try:
                prepared = self.service.prepare(conv)
            except ContextBudgetExceeded as exc:
                conv = fail_answer(conv, str(exc))
                self.service.store.put(conv)
                raise
        _dropped_notice(prepared)
        with user_errors():
            task = self.service.start(conv, prepared)
        yield from follow_answer(task, self.chatbot, lambda: self.shown.shows(request, conv.id))

    def settle(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        """After an answer event ends, however it ended: the composer back, and the conversation as saved.

        Gradio runs this also when the event was cancelled because the tab opened another conversation, and
        `stored` may then still name the one left; only what the tab shows now is drawn (`ui.tabs`)."""
        session = self.session(stored, request)
        if not self.shown.shows(request, session.conversation):
            return gr.skip(), gr.skip(), gr.skip()  # the conversation shown now sets the composer
        return unlocked_textbox(), self.chatbot(self._current(session)), self.conversation_list(session)

    def unlock(self) -> gr.MultimodalTextbox:
        return unlocked_textbox()

    def _draft(self, message: dict[str, Any] | None) -> Draft:
        """The composer's value as a draft, its text files quoted into the text (they are not media)."""
        message = message or {}
        text, files = with_text_files(
            message.get("text") or "", message.get("files") or (), self.service.limits.max_text_chars
        )
        return Draft(text=text, files=files)

    # Chatbot actions

    def retry(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        session = self.session(stored, request)
        conv = self._require_current(session)
        with user_errors():
            conv = retry(conv)
        self.service.store.put(conv)
        return locked_textbox(), self.chatbot(conv)

    def edit(self, stored: Any, edit: gr.EditData, request: gr.Request | None = None) -> tuple[Any, ...]:
        session = self.session(stored, request)
        conv = self._require_current(session)
        index = edit.index[0] if isinstance(edit.index, (list, tuple)) else edit.index
        with user_errors():
            conv = edit_user_message(conv, index, user_text(str(edit.value)))
        self.service.store.put(conv)
        return locked_textbox(), self.chatbot(conv)

    def undo(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Take back the last message and its answer, and put the message back in the composer."""
        session = self.session(stored, request)
        conv = self._require_current(session)
        user_messages = [m for m in conv.messages if m.role == "user"]
        with user_errors():
            conv = undo(conv)
        self.service.store.put(conv)
        last = user_messages[-1]
        restored = {
            "text": last.text,
            "files": [str(self.service.media_path(item.key)) for item in last.media],
        }
        return self.chatbot(conv), restored

    def show_version(
        self, stored: Any, select: gr.SelectData, request: gr.Request | None = None
    ) -> gr.Chatbot:
        """A version button under the last answer: show the version it names (its value, see
        `chat.display.version_options`)."""
        session = self.session(stored, request)
        value = str(select.value)
        with user_errors():
            conv = self.service.show_version(
                session.owner, session.conversation, int(value) if value.isdecimal() else -1
            )
        return self.chatbot(conv)

    def like(self, stored: Any, like: gr.LikeData, request: gr.Request | None = None) -> None:
        session = self.session(stored, request)
        conv = self._require_current(session)
        index = like.index[0] if isinstance(like.index, (list, tuple)) else like.index
        feedback = {True: "like", False: "dislike"}.get(like.liked) if isinstance(like.liked, bool) else None
        with user_errors():
            self.service.store.put(set_feedback(conv, index, feedback))

    def clear(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        """The Chatbot's clear button (hidden by the CSS): it only leaves the conversation, which stays in
        the list; deleting is the list's Delete, which asks first."""
        return self.new_conversation(stored, request)
