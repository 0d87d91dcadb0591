"""What each Composer event does: the Gradio-facing edge of `ComposeService`.

The owner is the chat's: the request's login, or else the chat's BrowserState token (`identity.Owners`); the
open article is kept in the Composer's own BrowserState, so a reload or a server restart reopens it. Gallery
picks are resolved by index against the stored article, never by a path the browser sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from ixc_app.compose.article import DONE, Article, shown_draft
from ixc_app.compose.options import ComposeOptions, n_images, target_length, writing_settings
from ixc_app.compose.service import ComposeService, Progress
from ixc_app.compose.strings import say
from ixc_app.ui.compose_layout import FORM_NAMES
from ixc_app.ui.errors import user_errors
from ixc_app.ui.identity import Owners, is_token
from ixc_app.ui.language import word


def article_id_of(state: Any) -> str:
    value = state.get("article") if isinstance(state, dict) else None
    return value if is_token(value) else ""


def status_text(article: Article | None, status: str = "") -> str:
    """The status line, then each step's cost and the article's notes."""
    if article is None:
        return status or say("ui.idle")
    if not status:
        status = (
            say("status.done", paragraphs=len(article.paragraphs), images=len(article.image_keys))
            if article.stage == DONE
            else say("ui.paused", step=say(f"step.{article.stage}"))
        )
    lines = [f"**{status}**"]
    for s in article.stats:
        lines.append(
            "- "
            + say(
                "status.cache",
                step=say(f"step.{s.step}"),
                calls=s.calls,
                prompt=s.prompt_tokens,
                cached=s.cached_tokens,
                generated=s.generated_tokens,
                seconds=s.seconds,
            )
        )
    lines += [f"> {note}" for note in article.notes]
    return "\n".join(lines)


class ComposeHandlers:
    def __init__(self, service: ComposeService, owners: Owners) -> None:
        self.service = service
        self.owners = owners

    def owner(self, session: Any, request: gr.Request | None) -> str:
        with user_errors():
            return self.owners.session(session, request).owner

    # Views

    def _options(self, values: Sequence[Any]) -> ComposeOptions:
        v = dict(zip(FORM_NAMES, values, strict=True))
        settings = writing_settings(
            self.service.default_settings(),
            max_tokens_cap=self.service.limits.max_new_tokens,
            **{k: v[k] for k in FORM_NAMES if k not in ("n_images", "target_length")},
        )
        return ComposeOptions(n_images(v["n_images"]), target_length(v["target_length"]), settings)

    def options(self, values: Sequence[Any]) -> ComposeOptions:
        with user_errors():
            return self._options(values)

    def form_values(self, article: Article | None) -> list[Any]:
        s = article.settings if article else self.service.default_settings()
        values = {
            "n_images": "auto" if article is None or article.n_images is None else str(article.n_images),
            "target_length": (article.target_length if article else None) or 0,
            "plan_first": s.plan_first,
            "llm_only": s.llm_only,
            "sampling": s.sampling,
            "num_beams": s.num_beams,
            "repetition_penalty": s.repetition_penalty,
            "max_new_tokens": s.max_new_tokens,
            "seed": -1 if s.seed is None else s.seed,
            "use_meta": s.use_meta,
        }
        return [values[name] for name in FORM_NAMES]

    def article_list(self, owner: str, current: str) -> gr.Radio:
        summaries = self.service.articles(owner)
        return gr.Radio(
            choices=[(s.title, s.id) for s in summaries],
            value=current or None,
            info=None if summaries else word("ui.articles_empty"),
        )

    def _current(self, owner: str, state: Any) -> Article | None:
        article_id = article_id_of(state)
        return self.service.store.get(owner, article_id) if article_id else None

    def _require(self, session: Any, state: Any, request: gr.Request | None) -> tuple[str, Article]:
        owner = self.owner(session, request)
        with user_errors():
            return owner, self.service.open(owner, article_id_of(state))

    def _steps(self, article: Article | None, status: str = "") -> tuple[Any, ...]:
        """(article state, outline, draft, preview, status): what a run updates."""
        return (
            {"article": article.id if article else ""},
            article.content.outline if article else "",
            shown_draft(article) if article else "",
            self.service.preview(article),
            status_text(article, status),
        )

    def _page(self, owner: str, article: Article | None) -> tuple[Any, ...]:
        """Everything that shows which article is open (see `compose_events.page_outputs`)."""
        return (
            *self._steps(article),
            self.article_list(owner, article.id if article else ""),
            article.title if article else "",
            article.instruction if article else "",
            *self.form_values(article),
        )

    # Article list

    def load(self, session: Any, state: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        owner = self.owners.session_or_new(session, request).owner
        return self._page(owner, self._current(owner, state))

    def new(self, session: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        return self._page(self.owner(session, request), None)

    def switch(
        self, session: Any, article_id: str | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        owner = self.owner(session, request)
        article = self.service.store.get(owner, article_id) if is_token(article_id) else None
        return self._page(owner, article)

    def rename(self, session: Any, state: Any, title: str, request: gr.Request | None = None) -> gr.Radio:
        owner = self.owner(session, request)
        with user_errors():
            self.service.rename(owner, article_id_of(state), title)
        return self.article_list(owner, article_id_of(state))

    def delete(self, session: Any, state: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        owner = self.owner(session, request)
        if article_id_of(state) and self.service.delete(owner, article_id_of(state)):
            gr.Info(say("ui.deleted"))
        return self._page(owner, None)

    # Runs

    def _stream(self, progress: Iterator[Progress]) -> Iterator[tuple[Any, ...]]:
        with user_errors():
            for step in progress:
                yield self._steps(step.article, step.status)

    def compose(
        self,
        session: Any,
        instruction: str,
        files: list[str] | None,
        step_by_step: bool,
        request: gr.Request | None,
        *form: Any,
    ) -> Iterator[tuple[Any, ...]]:
        owner = self.owner(session, request)
        with user_errors():
            options = self._options(form)
            keys = self.service.ingest(files or [])
            article = self.service.start(owner, instruction or "", keys, options)
        yield self._steps(article)
        yield from self._stream(self.service.compose(article, single_step=bool(step_by_step)))

    def resume(
        self,
        session: Any,
        state: Any,
        outline: str,
        draft: str,
        step_by_step: bool,
        request: gr.Request | None,
        *form: Any,
    ) -> Iterator[tuple[Any, ...]]:
        """Continue from where the article stands, with the outline and draft as the boxes show them."""
        owner, article = self._require(session, state, request)
        with user_errors():
            self.service.set_settings(owner, article.id, self._options(form))
            self.service.set_outline(owner, article.id, outline or "")
            article = self.service.set_draft(owner, article.id, draft or "")
        yield from self._stream(self.service.compose(article, single_step=bool(step_by_step)))

    def restart(
        self, session: Any, state: Any, step: str, step_by_step: bool, request: gr.Request | None, *form: Any
    ) -> Iterator[tuple[Any, ...]]:
        owner, article = self._require(session, state, request)
        with user_errors():
            self.service.set_settings(owner, article.id, self._options(form))
            article = self.service.restart_from(owner, article.id, step)
        yield self._steps(article)
        yield from self._stream(self.service.compose(article, single_step=bool(step_by_step)))

    def settle(self, session: Any, state: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        """After a run, however it ended: the article as saved, and the list (a new article is in it)."""
        owner = self.owner(session, request)
        article = self._current(owner, state)
        return (*self._steps(article), self.article_list(owner, article.id if article else ""))

    def save_outline(self, session: Any, state: Any, outline: str, request: gr.Request | None = None) -> None:
        owner, article = self._require(session, state, request)
        with user_errors():
            self.service.set_outline(owner, article.id, outline or "")

    def save_draft(self, session: Any, state: Any, draft: str, request: gr.Request | None = None) -> str:
        owner, article = self._require(session, state, request)
        with user_errors():
            article = self.service.set_draft(owner, article.id, draft or "")
        return self.service.preview(article)

    # Editing

    def edit(
        self,
        session: Any,
        state: Any,
        paragraph: float,
        action: str,
        text: str,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        owner, article = self._require(session, state, request)
        with user_errors():
            for edited in self.service.edit(owner, article.id, int(paragraph or 1) - 1, action, text or ""):
                yield self.service.preview(edited), status_text(edited)

    def move_up(
        self, session: Any, state: Any, paragraph: float, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        return self._move(session, state, paragraph, -1, request)

    def move_down(
        self, session: Any, state: Any, paragraph: float, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        return self._move(session, state, paragraph, 1, request)

    def _move(
        self, session: Any, state: Any, paragraph: float, offset: int, request: gr.Request | None
    ) -> tuple[Any, ...]:
        owner, article = self._require(session, state, request)
        index = int(paragraph or 1) - 1
        with user_errors():
            article = self.service.move(owner, article.id, index, 1 if offset > 0 else -1)
        return self.service.preview(article), index + 1 + offset

    def undo(self, session: Any, state: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        return self._history(session, state, False, request)

    def redo(self, session: Any, state: Any, request: gr.Request | None = None) -> tuple[Any, ...]:
        return self._history(session, state, True, request)

    def _history(
        self, session: Any, state: Any, forward: bool, request: gr.Request | None
    ) -> tuple[Any, ...]:
        owner, article = self._require(session, state, request)
        with user_errors():
            article = (self.service.redo if forward else self.service.undo)(owner, article.id)
        return self._steps(article)[1:]

    def figure(
        self, session: Any, state: Any, paragraph: float, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """The caption and candidates of the image after the paragraph, for the image editor."""
        return self._figure_view(self._current(self.owner(session, request), state), paragraph)

    def _figure_view(self, article: Article | None, paragraph: float) -> tuple[Any, ...]:
        index = int(paragraph or 1) - 1
        if article is None or not 0 <= index < len(article.paragraphs):
            return "", []
        figure = article.paragraphs[index].figure
        if figure is None:
            return "", []
        items = [
            (str(self.service.media.path(k)), "✓" if k == figure.key else None)
            for k in figure.candidates or ()
        ]
        return figure.caption or "", items

    def _figure_changed(self, article: Article, paragraph: float) -> tuple[Any, ...]:
        return (self.service.preview(article), *self._figure_view(article, paragraph))

    def search(
        self, session: Any, state: Any, paragraph: float, caption: str, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        owner, article = self._require(session, state, request)
        with user_errors():
            article = self.service.search_images(owner, article.id, int(paragraph or 1) - 1, caption or "")
        return self._figure_changed(article, paragraph)

    def pick(
        self,
        session: Any,
        state: Any,
        paragraph: float,
        select: gr.SelectData,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        owner, article = self._require(session, state, request)
        index = int(paragraph or 1) - 1
        figure = article.paragraphs[index].figure if 0 <= index < len(article.paragraphs) else None
        candidates = (figure.candidates or ()) if figure else ()
        position = select.index if isinstance(select.index, int) else -1
        if not 0 <= position < len(candidates):
            raise gr.Error(say("error.no_candidate"), print_exception=False)
        with user_errors():
            article = self.service.pick_image(owner, article.id, index, candidates[position])
        return self._figure_changed(article, paragraph)

    def remove_image(
        self, session: Any, state: Any, paragraph: float, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        owner, article = self._require(session, state, request)
        with user_errors():
            article = self.service.remove_image(owner, article.id, int(paragraph or 1) - 1)
        return self._figure_changed(article, paragraph)

    def upload_image(
        self, session: Any, state: Any, paragraph: float, path: str | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        owner, article = self._require(session, state, request)
        if path:
            with user_errors():
                article = self.service.upload_image(owner, article.id, int(paragraph or 1) - 1, path)
        return (*self._figure_changed(article, paragraph), None)

    def export(self, session: Any, state: Any, fmt: str, request: gr.Request | None = None) -> str:
        owner, article = self._require(session, state, request)
        with user_errors():
            return str(self.service.export(owner, article.id, fmt))

    # Library

    def library_status(self, session: Any, request: gr.Request | None = None) -> str:
        owner = self.owners.session_or_new(session, request).owner
        pool = self.service.library.pool(owner)
        return say("ui.library_status", images=len(pool), captioned=len(self.service.library.captions(pool)))

    def library_add(
        self, session: Any, files: list[str] | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        owner = self.owner(session, request)
        with user_errors():
            self.service.add_to_library(owner, files or [])
        return self.library_status(session, request), None

    def library_index(
        self,
        session: Any,
        request: gr.Request | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way of asking for a progress tracker)
    ) -> Iterator[str]:
        owner = self.owner(session, request)
        with user_errors():
            for step in self.service.index_library(owner):
                if step.total:
                    progress(step.done / step.total, desc=say("ui.library_index"))
                yield say("ui.library_progress", done=step.done, total=step.total, made=step.captioned_now)
        yield self.library_status(session, request)
