"""The composer's use cases, shared by the browser UI and the API: compose, edit, pick images, export.

No gradio here. Every model step goes through the engine runner (the chat's), so it is bounded by the
engine's concurrency and stops the engine when its iterator is closed. Articles are saved as they change and
however a step ends; a save never revives an article deleted meanwhile and keeps a name given meanwhile.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ixc_app.chat.ingest import ingest_upload
from ixc_app.chat.runner import EngineRunner
from ixc_app.compose import editing
from ixc_app.compose.article import (
    STEPS,
    Article,
    ArticleError,
    Figure,
    Paragraph,
    WritingSettings,
    change,
    new_article,
    paragraph_at,
    redo,
    reset_from,
    shown_draft,
    undo,
    with_draft,
)
from ixc_app.compose.article_store import ArticleStore, ArticleSummary
from ixc_app.compose.errors import ComposeFailed, ComposeRejected
from ixc_app.compose.library import IndexProgress, Library
from ixc_app.compose.options import ComposeOptions
from ixc_app.compose.pipeline import Composition
from ixc_app.compose.render import (
    article_html,
    export_name,
    html_document,
    markdown_text,
    markdown_zip,
    media_url,
)
from ixc_app.compose.requests import DoesNotFit, Planner
from ixc_app.compose.strings import say
from ixc_app.config import Settings
from ixc_app.engines.base import EngineError
from ixc_app.ixc.compose_parse import fallback_caption
from ixc_app.ixc.prompt import ImageRef

log = logging.getLogger(__name__)

ExportFormat = Literal["markdown-zip", "html"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("markdown-zip", "html")
MAX_REFERENCES = 10


@dataclass(frozen=True)
class Progress:
    """The article so far and one line saying what is happening."""

    article: Article
    status: str


class ComposeService:
    def __init__(
        self, settings: Settings, runner: EngineRunner, store: ArticleStore, library: Library
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.runner = runner
        self.store = store
        self.library = library
        self.media = store.media

    # Engine

    @property
    def planner(self) -> Planner:
        engine = self.runner.engine
        limit = min(self.limits.context_budget, engine.capabilities.context_length)
        return Planner(engine.capabilities, engine.tokenizer, limit, self.image_of)

    def image_of(self, key: str) -> ImageRef:
        stored = self.media.get(key)
        if stored is None or stored.kind != "image":
            raise ComposeFailed(say("error.image_gone"))
        return ImageRef(key=key, path=str(stored.path), width=stored.width, height=stored.height)

    def default_settings(self) -> WritingSettings:
        return WritingSettings(
            max_new_tokens=min(WritingSettings().max_new_tokens, self.limits.max_new_tokens),
            hd_num_single=self.settings.hd_num_single,
            hd_num_multi=self.settings.hd_num_multi,
        )

    # Articles

    def articles(self, owner: str) -> list[ArticleSummary]:
        return self.store.list(owner)

    def open(self, owner: str, article_id: str) -> Article:
        return self.store.require(owner, article_id)

    def rename(self, owner: str, article_id: str, title: str) -> Article:
        try:
            return self.store.rename(owner, article_id, title)
        except ArticleError as exc:
            raise ComposeRejected(str(exc)) from exc

    def delete(self, owner: str, article_id: str) -> bool:
        return self.store.delete(owner, article_id)

    def save(self, article: Article) -> Article:
        """Store `article` unless it was deleted meanwhile, keeping a name it was given meanwhile."""
        stored = self.store.get(article.owner, article.id)
        if stored is None:
            return article
        article = replace(article, title=stored.title)
        self.store.put(article)
        return article

    def preview(self, article: Article | None) -> str:
        return "" if article is None else article_html(article, media_url(self.media))

    def markdown(self, article: Article) -> str:
        return markdown_text(article, media_url(self.media))

    # Composing

    def ingest(self, files: Sequence[str], limit: int = MAX_REFERENCES) -> tuple[str, ...]:
        """Validate and store up to `limit` images (sniffed by content); videos are refused."""
        if len(files) > limit:
            raise ComposeRejected(say("error.too_many_files", n=len(files), limit=limit))
        keys = []
        for path in files:
            item = ingest_upload(self.media, path, self.limits)
            if item.kind != "image":
                raise ComposeRejected(say("error.not_image", name=item.name))
            keys.append(item.key)
        return tuple(dict.fromkeys(keys))

    def start(
        self, owner: str, instruction: str, references: Sequence[str], options: ComposeOptions
    ) -> Article:
        """A new article for `instruction` (saved); its reference images join the owner's library."""
        if not instruction.strip():
            raise ComposeRejected(say("error.empty_instruction"))
        if len(instruction) > self.limits.max_text_chars:
            raise ComposeRejected(
                say("error.long_instruction", n=len(instruction), limit=self.limits.max_text_chars)
            )
        if len(references) > MAX_REFERENCES:
            raise ComposeRejected(say("error.too_many_files", n=len(references), limit=MAX_REFERENCES))
        article = new_article(
            owner,
            instruction.strip(),
            references=tuple(references),
            n_images=options.n_images,
            target_length=options.target_length,
            settings=options.settings,
        )
        self.store.put(article)
        if references:
            self.library.add(owner, references)
        return article

    def compose(self, article: Article, *, single_step: bool = False) -> Iterator[Progress]:
        """Run the steps from the article's stage on (one step only with `single_step`); close to stop."""
        run = Composition(article, self.runner, self.planner, self.library, self.save)
        for status in run.run(single_step=single_step):
            yield Progress(run.article, status)

    def restart_from(self, owner: str, article_id: str, step: str) -> Article:
        """Take away what `step` and later steps produced, so the next run starts at `step`."""
        article = self.open(owner, article_id)
        if step not in STEPS:
            raise ComposeRejected(say("error.step", value=step, steps=", ".join(STEPS)))
        if step == "outline" and not article.settings.plan_first:
            step = "draft"
        article = change(article, reset_from(article.content, step))
        return self.save(article)

    def set_settings(self, owner: str, article_id: str, options: ComposeOptions) -> Article:
        article = self.open(owner, article_id)
        return self.save(
            replace(
                article,
                n_images=options.n_images,
                target_length=options.target_length,
                settings=options.settings,
            )
        )

    def set_outline(self, owner: str, article_id: str, outline: str) -> Article:
        article = self.open(owner, article_id)
        if outline == article.content.outline:
            return article
        stage = "draft" if article.stage == "outline" and outline.strip() else article.stage
        return self.save(change(article, replace(article.content, outline=outline, stage=stage)))

    def set_draft(self, owner: str, article_id: str, draft: str) -> Article:
        """A hand-edited draft: new paragraphs (without images); the image steps run next."""
        article = self.open(owner, article_id)
        if draft.strip() == shown_draft(article).strip():
            return article
        content = with_draft(article.content, draft)
        stage = "slots" if content.paragraphs and not article.settings.llm_only else article.stage
        return self.save(change(article, replace(content, stage=stage, source="")))

    # Editing

    def edit(self, owner: str, article_id: str, index: int, action: str, text: str) -> Iterator[Article]:
        """One paragraph edit; the model's (rewrite, expand, shorten, insert) stream. Closing the iterator
        stops the model and keeps what it wrote."""
        article = self.open(owner, article_id)
        if action not in editing.EDIT_ACTIONS:
            raise ComposeRejected(say("error.action", actions=", ".join(editing.EDIT_ACTIONS), value=action))
        paragraph_at_or_reject(article, index)
        if action in ("delete", "replace_text"):
            if action == "replace_text" and not text.strip():
                raise ComposeRejected(say("error.needs_text"))
            yield self.save(self._apply(article, index, action, text))
            return
        if action.startswith("insert") and not text.strip():
            raise ComposeRejected(say("error.needs_instruction"))
        try:
            request = self.planner.edit(article, action, index, text.strip())
        except DoesNotFit as exc:
            raise ComposeRejected(
                say("error.context", step=action, tokens=exc.tokens, limit=exc.limit)
            ) from exc
        written, result = "", article
        stream = self.runner.stream(request)
        try:
            for snapshot in stream:
                written = snapshot.text
                if written.strip():
                    result = self._apply(article, index, action, written)
                    yield result
        except EngineError as exc:
            raise ComposeFailed(say("error.failed", step=action, reason=str(exc).rstrip("."))) from exc
        finally:
            stream.close()
            if written.strip():
                result = self.save(result)
        yield result

    def _apply(self, article: Article, index: int, action: str, text: str) -> Article:
        try:
            return editing.apply_text(article, index, action, text)
        except ArticleError as exc:
            raise ComposeRejected(str(exc)) from exc

    def _edited(self, owner: str, article_id: str, operation: Callable[[Article], Article]) -> Article:
        article = self.open(owner, article_id)
        try:
            return self.save(operation(article))
        except ArticleError as exc:
            raise ComposeRejected(str(exc)) from exc

    def move(self, owner: str, article_id: str, index: int, offset: Literal[-1, 1]) -> Article:
        return self._edited(owner, article_id, lambda a: editing.move(a, index, offset))

    def undo(self, owner: str, article_id: str) -> Article:
        return self._edited(owner, article_id, undo)

    def redo(self, owner: str, article_id: str) -> Article:
        return self._edited(owner, article_id, redo)

    def search_images(self, owner: str, article_id: str, index: int, caption: str) -> Article:
        """New candidates for the image after paragraph `index` from an edited caption (none already used)."""
        article = self.open(owner, article_id)
        paragraph = paragraph_at_or_reject(article, index)
        caption = " ".join(caption.split()) or fallback_caption(paragraph.text)
        current = paragraph.figure.key if paragraph.figure else None
        exclude = [k for k in article.image_keys if k != current]
        candidates = self.library.search(owner, caption, exclude=exclude)
        if not candidates:
            raise ComposeRejected(say("error.library_empty"))
        figure = Figure(
            caption=caption, candidates=candidates, key=current if current in candidates else None
        )
        return self._edited(owner, article_id, lambda a: editing.set_figure(a, index, figure))

    def pick_image(self, owner: str, article_id: str, index: int, key: str) -> Article:
        return self._edited(owner, article_id, lambda a: editing.pick(a, index, key))

    def remove_image(self, owner: str, article_id: str, index: int) -> Article:
        return self._edited(owner, article_id, lambda a: editing.set_figure(a, index, None))

    def upload_image(self, owner: str, article_id: str, index: int, path: str) -> Article:
        """Replace the image after paragraph `index` with an upload (which also joins the library)."""
        (key,) = self.ingest([path])
        self.library.add(owner, [key])
        return self.pick_image(owner, article_id, index, key)

    # Library

    def add_to_library(self, owner: str, files: Sequence[str]) -> tuple[str, ...]:
        keys = self.ingest(files, limit=self.limits.max_files_per_conversation)
        self.library.add(owner, keys)
        return keys

    def index_library(self, owner: str) -> Iterator[IndexProgress]:
        """Scan the folders, then caption what has no caption yet; close the iterator to stop."""
        self.library.scan_folders()
        settings = self.default_settings()
        yield from self.library.index(owner, lambda key: self._describe(key, settings))

    def _describe(self, key: str, settings: WritingSettings) -> str:
        request = self.planner.library_caption(key, settings)
        text = ""
        stream = self.runner.stream(request)
        try:
            for snapshot in stream:
                text = snapshot.text
        except EngineError as exc:
            raise ComposeFailed(say("error.failed", step="captioning", reason=str(exc).rstrip("."))) from exc
        finally:
            stream.close()
        return text

    # Export

    def export(self, owner: str, article_id: str, fmt: str) -> Path:
        """The article as a file in Gradio's upload cache (served to the one who asked, cleaned by age)."""
        article = self.open(owner, article_id)
        if fmt not in EXPORT_FORMATS:
            raise ComposeRejected(say("error.format", value=fmt))
        if not article.paragraphs:
            raise ComposeRejected(say("error.no_paragraphs"))
        self.settings.upload_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="export-", dir=self.settings.upload_dir))
        if fmt == "html":
            path = folder / export_name(article, ".html")
            path.write_text(html_document(article, self.media), encoding="utf-8")
        else:
            path = folder / export_name(article, ".zip")
            path.write_bytes(markdown_zip(article, self.media))
        return path


def paragraph_at_or_reject(article: Article, index: int) -> Paragraph:
    try:
        return paragraph_at(article, index)
    except ArticleError as exc:
        raise ComposeRejected(str(exc)) from exc
