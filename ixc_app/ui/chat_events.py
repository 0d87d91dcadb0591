"""The chat tab's event graph, in the manner of Gradio's own `ChatInterface._setup_events`.

Sending is three steps: `validate` (instant: text length, file counts), `ingest` (queued in the media group:
content sniffing, pixel and duration limits, a video's frames, the context budget), then `answer` (queued in
the one engine group, sized from the engine's capability). Every limit is therefore checked before a request
waits for the engine. Retry, edit and the examples feed the same `answer` step. `ingest` shows the message in
the chat at once, a line per attachment following its progress (`ui.sending`), and the composer shows Stop
from then on. Stop during `ingest` stops the reading (a video at its next frame) without cancelling the event,
which then puts back the chat and the composer and fails, so no answer follows; Stop during the answer ends
the answer's server-side task, shows it as saved and cancels the events following it (leaving the page only
stops following it, see `ui.follow`). Leaving the conversation (new, switch, delete, clear) cancels them all,
and what they were showing stops at its next step (`ui.tabs`); switching to a conversation still answering
follows that answer again. `/chat` does its checks, decoding and answer in a group of its own, so it never
holds an engine slot while it decodes a video; the engine runner bounds the answers themselves. Cheap UI
events are queued too, with no concurrency limit (see `ui.errors.INSTANT`): Gradio's page shows the error or
notice of a queued event only. Every internal event is private, so the only public API is `/chat`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.events import Dependency

from ixc_app.ui.api import API_DESCRIPTION, ChatApi
from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.drawer import wire_drawer
from ixc_app.ui.errors import INSTANT
from ixc_app.ui.follow import AnswerFollower, wire_follow
from ixc_app.ui.layout import ChatView

ENGINE_GROUP = "engine"
MEDIA_GROUP = "media"
MEDIA_CONCURRENCY = 2
API_GROUP = "api"
PRIVATE = "private"

EDIT_KEYS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (!box.matches || !box.matches("#chatbot textarea.edit-textarea")) return;
    let next = box.closest(".message-row");
    while (next && !next.matches(".message-buttons")) next = next.nextElementSibling;
    const submit = next && next.querySelector("button");
    if (!submit) return;
    event.preventDefault();
    submit.click();
  }, true);
}
"""
"""Enter in the Chatbot's edit box submits the edit (its first button), Shift+Enter makes a new line, as in
the composer; Gradio's edit box has no keys of its own."""


def wire_chat(
    demo: gr.Blocks, view: ChatView, handlers: ChatHandlers, api: ChatApi, engine_concurrency: int
) -> None:
    settings = view.settings.components
    view_outputs = view.opened
    quick: dict[str, Any] = {**INSTANT, "api_visibility": PRIVATE, "show_progress": "hidden"}
    engine: dict[str, Any] = {
        "concurrency_id": ENGINE_GROUP,
        "concurrency_limit": engine_concurrency,
        "api_visibility": PRIVATE,
        "show_progress": "minimal",
    }

    def answer_then_settle(start: Dependency) -> Dependency:
        answered = start.success(handlers.answer, [view.browser, *settings], [view.chatbot], **engine)
        answered.then(
            handlers.settle, [view.browser], [view.textbox, view.chatbot, view.conversations], **quick
        )
        return answered

    def send(validated: Dependency) -> tuple[Dependency, Dependency]:
        """The ingest step and the answer after it."""
        ingested = validated.success(
            handlers.ingest,
            [view.textbox, view.browser, *settings],
            [view.textbox, view.chatbot, view.browser],
            concurrency_id=MEDIA_GROUP,
            concurrency_limit=MEDIA_CONCURRENCY,
            api_visibility=PRIVATE,
            show_progress="hidden",
            show_progress_on=[view.textbox],
        )
        ingested.failure(handlers.unlock, None, [view.textbox], **quick)
        ingested.success(handlers.refresh_list, [view.browser], [view.conversations], **quick)
        return ingested, answer_then_settle(ingested)

    follower = AnswerFollower(handlers)
    resumed = wire_follow(view, follower, demo.load(handlers.load, [view.browser], view_outputs, **quick))
    demo.load(None, js=EDIT_KEYS_JS)
    wire_drawer(demo, [view.new_chat, view.conversations])

    from_example = view.chatbot.example_select(handlers.example, None, [view.textbox], **quick)
    sent = [
        send(view.textbox.submit(handlers.validate, [view.textbox, view.browser], [view.textbox], **quick)),
        send(from_example.success(handlers.validate, [view.textbox, view.browser], [view.textbox], **quick)),
    ]
    answers = [answered for _, answered in sent]
    answers.append(
        answer_then_settle(
            view.chatbot.retry(handlers.retry, [view.browser], [view.textbox, view.chatbot], **quick)
        )
    )
    edited = view.chatbot.edit(handlers.edit, [view.browser], [view.textbox, view.chatbot], **quick)
    # The browser shows the edited text before the server answers: a refused edit shows the saved one again.
    edited.failure(handlers.settle, [view.browser], [view.textbox, view.chatbot, view.conversations], **quick)
    answers.append(answer_then_settle(edited))
    switched = view.conversations.input(
        handlers.switch, [view.browser, view.conversations], view_outputs, **quick
    )
    followed = [resumed, wire_follow(view, follower, switched)]
    view.textbox.stop(
        follower.stop, [view.browser], [view.textbox, view.chatbot], cancels=[*answers, *followed], **quick
    )
    view.textbox.stop(handlers.stop_reading, None, None, **quick)
    running = [*(ingested for ingested, _ in sent), *answers, *followed]
    view.conversations.input(None, None, None, cancels=running, **quick)

    view.chatbot.undo(handlers.undo, [view.browser], [view.chatbot, view.textbox], **quick)
    view.chatbot.like(handlers.like, [view.browser], None, **quick)
    view.chatbot.option_select(handlers.show_version, [view.browser], [view.chatbot], **quick)
    view.chatbot.clear(handlers.clear, [view.browser], view_outputs, cancels=running, **quick)
    view.new_chat.click(handlers.new_conversation, [view.browser], view_outputs, cancels=running, **quick)
    # A textbox emptied by the user raises no input event in Gradio 6; leaving it still saves it.
    gr.on(
        [*(component.input for component in settings), view.settings.meta_instruction.blur],
        handlers.remember_settings,
        [view.browser, *settings],
        None,
        trigger_mode="always_last",
        **quick,
    )
    view.rename.click(handlers.rename, [view.browser, view.title], [view.conversations], **quick)
    view.title.submit(handlers.rename, [view.browser, view.title], [view.conversations], **quick)
    view.delete.click(handlers.ask_delete, None, [view.confirm_delete], **quick)
    view.keep.click(handlers.keep, None, [view.confirm_delete], **quick)
    view.delete_for_good.click(handlers.delete, [view.browser], view_outputs, cancels=running, **quick).then(
        handlers.keep, None, [view.confirm_delete], **quick
    )

    ports = view.api
    ports.trigger.click(
        api.chat,
        [ports.message, ports.files, ports.conversation_in, *ports.settings.components],
        [ports.answer, ports.conversation_out],
        api_name="chat",
        api_description=API_DESCRIPTION,
        api_visibility="public",
        concurrency_id=API_GROUP,
        concurrency_limit=MEDIA_CONCURRENCY + engine_concurrency,
        show_progress="hidden",
    )
