"""The Composer tab's event graph and its three API endpoints.

Runs (Compose, Continue, Run from a step, a paragraph edit, captioning the library) are generators queued
in the engine's concurrency group; Stop cancels them, which closes their iterators: the engine stops within
a step and the article is saved with what was written, then `settle` shows the article as saved. Cheap
events are queued without a limit (`ui.errors.INSTANT`: only a queued event's sentence reaches the page);
every internal event is private, so the public API is `/compose`, `/article_edit` and `/article_export`
(beside `/chat`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ixc_app.ui.chat_events import ENGINE_GROUP, PRIVATE
from ixc_app.ui.compose_api import COMPOSE_DESCRIPTION, EDIT_DESCRIPTION, EXPORT_DESCRIPTION, ComposeApi
from ixc_app.ui.compose_handlers import ComposeHandlers
from ixc_app.ui.compose_layout import ComposerView
from ixc_app.ui.errors import INSTANT

API_GROUP = "compose-api"


def wire_composer(
    browser: gr.BrowserState,
    view: ComposerView,
    handlers: ComposeHandlers,
    api: ComposeApi,
    engine_concurrency: int,
) -> None:
    quick: dict[str, Any] = {**INSTANT, "api_visibility": PRIVATE, "show_progress": "hidden"}
    stop: dict[str, Any] = {"queue": False, "api_visibility": PRIVATE}
    engine: dict[str, Any] = {
        "concurrency_id": ENGINE_GROUP,
        "concurrency_limit": engine_concurrency,
        "api_visibility": PRIVATE,
        "show_progress": "minimal",
        "show_progress_on": [view.status],
    }
    steps = [view.article, view.outline, view.draft, view.preview, view.status]
    page = [*steps, view.articles, view.title, view.instruction, *view.form]
    state = [browser, view.article]
    settle_outputs = [*steps, view.articles]

    def run(trigger: Any, fn: Any, inputs: list[Any]) -> Any:
        started = trigger(fn, inputs, steps, api_name=f"composer_{fn.__name__}", **engine)
        started.then(handlers.settle, state, settle_outputs, **quick)
        return started

    form = [view.step_by_step, *view.form]
    runs = [
        run(view.compose.click, handlers.compose, [browser, view.instruction, view.references, *form]),
        run(view.resume.click, handlers.resume, [*state, view.outline, view.draft, *form]),
        run(view.restart.click, handlers.restart, [*state, view.restart_step, *form]),
    ]
    edited = view.apply.click(
        handlers.edit,
        [*state, view.paragraph, view.action, view.edit_text],
        [view.preview, view.status],
        **engine,
    )
    edited.then(handlers.settle, state, settle_outputs, **quick)
    runs.append(edited)
    progress = {**engine, "show_progress": "full", "show_progress_on": [view.library_status]}
    indexing = view.library_index.click(handlers.library_index, [browser], [view.library_status], **progress)
    view.library_stop.click(None, None, None, cancels=[indexing], **stop)
    view.stop.click(None, None, None, cancels=runs, **stop)

    view.tab.select(handlers.load, state, page, **quick)
    view.tab.select(handlers.library_status, [browser], [view.library_status], **quick)
    view.new.click(handlers.new, [browser], page, cancels=runs, **quick)
    view.articles.input(handlers.switch, [browser, view.articles], page, cancels=runs, **quick)
    view.rename.click(handlers.rename, [*state, view.title], [view.articles], **quick)
    view.title.submit(handlers.rename, [*state, view.title], [view.articles], **quick)
    view.delete.click(handlers.delete, state, page, cancels=runs, **quick)
    view.outline.blur(handlers.save_outline, [*state, view.outline], None, **quick)
    view.draft.blur(handlers.save_draft, [*state, view.draft], [view.preview], **quick)

    figure = [view.caption, view.gallery]
    view.paragraph.change(handlers.figure, [*state, view.paragraph], figure, **quick)
    moved = [view.preview, view.paragraph]
    view.up.click(handlers.move_up, [*state, view.paragraph], moved, **quick)
    view.down.click(handlers.move_down, [*state, view.paragraph], moved, **quick)
    history = [view.outline, view.draft, view.preview, view.status]
    view.undo.click(handlers.undo, state, history, **quick)
    view.redo.click(handlers.redo, state, history, **quick)
    view.search.click(
        handlers.search, [*state, view.paragraph, view.caption], [view.preview, *figure], **quick
    )
    view.gallery.select(handlers.pick, [*state, view.paragraph], [view.preview, *figure], **quick)
    view.remove_image.click(handlers.remove_image, [*state, view.paragraph], [view.preview, *figure], **quick)
    view.upload_image.upload(
        handlers.upload_image,
        [*state, view.paragraph, view.upload_image],
        [view.preview, *figure, view.upload_image],
        api_visibility=PRIVATE,
    )
    view.export.click(
        handlers.export, [*state, view.export_format], [view.export_file], api_visibility=PRIVATE
    )
    view.library_add.click(
        handlers.library_add, [browser, view.library_files], [view.library_status, view.library_files],
        api_visibility=PRIVATE, show_progress="minimal",
    )  # fmt: skip

    ports = view.api
    public: dict[str, Any] = {
        "api_visibility": "public",
        "concurrency_id": API_GROUP,
        "concurrency_limit": engine_concurrency + 1,
        "show_progress": "hidden",
    }
    ports.compose.click(
        api.compose, [ports.instruction, ports.files, *ports.form], [ports.markdown, ports.article_out],
        api_name="compose", api_description=COMPOSE_DESCRIPTION, **public,
    )  # fmt: skip
    ports.edit.click(
        api.article_edit, [ports.article_in, ports.paragraph, ports.action, ports.text],
        [ports.markdown, ports.article_out], api_name="article_edit", api_description=EDIT_DESCRIPTION,
        **public,
    )  # fmt: skip
    ports.export.click(
        api.article_export, [ports.article_in, ports.format], [ports.file], api_name="article_export",
        api_description=EXPORT_DESCRIPTION, **public,
    )  # fmt: skip
