"""The page follows answers that run on the server; it does not own them.

An answer runs in a server-side task (`chat.answers`), so a reload or a lost connection only ends the page's
view of it: Gradio closes the event's generator, the task writes on. The answer event and the follow event
after a page load or a switch render the task as it streams, while the tab shows its conversation
(`ui.tabs`); Stop is the one event that ends the task itself. A page that opens a conversation still
answering (loaded, or switched back to) shows the composer locked with Stop and follows the answer again.
The page load also says, once per visitor, when the app had to start from an empty store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio.events import Dependency

from ixc_app.chat import Conversation
from ixc_app.chat.answers import AnswerTask
from ixc_app.i18n import tr
from ixc_app.ui.identity import BrowserSession, MissingSession
from ixc_app.ui.textbox import locked_textbox, unlocked_textbox

if TYPE_CHECKING:
    from ixc_app.ui.chat_handlers import ChatHandlers
    from ixc_app.ui.layout import ChatView

STOP_WAIT_S = 10.0
"""How long Stop waits for the answer to be saved as stopped (the engine stops within one prefill chunk)."""
FOLLOW_GROUP = "follow"
FOLLOW_CONCURRENCY = 16
"""Pages following an answer at once: each holds a worker thread that mostly waits."""


def follow_answer(
    task: AnswerTask, chatbot: Callable[[Conversation], gr.Chatbot], shown: Callable[[], bool]
) -> Iterator[gr.Chatbot]:
    """The Chatbot each time the answer grows, while the tab still shows its conversation (`shown`, see
    `ui.tabs`); the task's failure, if any, as a Gradio error at the end."""
    for partial in task.follow():
        if not shown():
            return
        yield chatbot(partial)
    if task.error:
        raise gr.Error(task.error, print_exception=False)


class AnswerFollower:
    def __init__(self, handlers: ChatHandlers) -> None:
        self.handlers = handlers
        self.service = handlers.service
        self._told: set[str] = set()

    def stop(self, stored: Any, request: gr.Request | None = None) -> tuple[Any, Any]:
        """Stop: end the open conversation's answer on the server and show it as saved, marked stopped.

        Stop also cancels the events that follow the answer (one still waiting in the queue has no task to
        stop yet), and their settle step gives the composer back."""
        session = self._session(stored, request)
        task = self.service.answering(session.owner, session.conversation) if session else None
        if task is None:
            return gr.skip(), gr.skip()
        self.service.stop(session.owner, session.conversation)
        return unlocked_textbox(), self.handlers.chatbot(task.finished(STOP_WAIT_S))

    def resume(self, stored: Any, request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
        """After a page load or a switch: follow the open conversation's answer if it is still being
        written, until it ends or the tab opens another conversation."""
        session = self._session(stored, request)
        if session is not None:
            self._startup_notice(session.owner)
        task = (
            self.service.answering(session.owner, session.conversation)
            if session and session.conversation
            else None
        )
        if task is None:
            # A generator that ends without a value would set the outputs to None (a null textbox breaks
            # the page's next upload), so it says "no change" instead.
            yield gr.skip(), gr.skip(), gr.skip()
            return
        shown = self.handlers.shown
        conversation = session.conversation
        # The composer is locked once: a step that reaches the page after Stop's own reply (Gradio's cancel
        # arrives later) must not lock it again.
        composer: Any = locked_textbox()
        for chatbot in follow_answer(task, self.handlers.chatbot, lambda: shown.shows(request, conversation)):
            yield composer, chatbot, gr.skip()
            composer = gr.skip()
        yield self.handlers.settle(stored, request)

    def _session(self, stored: Any, request: gr.Request | None) -> BrowserSession | None:
        try:
            return self.handlers.owners.session(stored, request)
        except MissingSession:
            return None

    def _startup_notice(self, owner: str) -> None:
        recovered = self.service.store.recovered_from
        if recovered is not None and owner not in self._told:
            self._told.add(owner)
            gr.Warning(
                tr(
                    "The saved conversations could not be read when the app started, so it started with an "
                    "empty history; the damaged copy was kept on the server for its operator."
                )
            )


def wire_follow(view: ChatView, follower: AnswerFollower, opened: Dependency) -> Dependency:
    """Follow a running answer after the page load or a switch; returns the event, for Stop and for leaving
    the conversation to cancel as well."""
    return opened.then(
        follower.resume,
        [view.browser],
        [view.textbox, view.chatbot, view.conversations],
        concurrency_id=FOLLOW_GROUP,
        concurrency_limit=FOLLOW_CONCURRENCY,
        api_visibility="private",
        show_progress="hidden",
    )
