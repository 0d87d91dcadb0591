"""The article's canonical state: frozen, JSON-serialisable dataclasses and pure operations on them.

An article is its request (instruction, reference images, image count, settings), what the steps produced
(outline, draft, paragraphs with their figures) and where the pipeline stands (`stage`: the next step to
run). Every edit returns a new article whose previous content is on the undo stack, so undo and redo cover
the model's steps and the user's edits alike. A figure's fields say how far its steps got: `caption` None is
not captioned yet, `candidates` None not searched yet, `key` None not chosen yet; that is what lets a stopped
composition continue exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ixc_app.compose.strings import say
from ixc_app.ixc.compose import split_paragraphs

Step = Literal["outline", "draft", "slots", "captions", "candidates", "select"]
STEPS: tuple[Step, ...] = ("outline", "draft", "slots", "captions", "candidates", "select")
DONE = "done"
UNDO_DEPTH = 50
DEFAULT_TITLE = "New article"
TITLE_CHARS = 60


class ArticleError(ValueError):
    """An edit that cannot be made; the message is one sentence for the user."""


@dataclass(frozen=True)
class WritingSettings:
    """The official demo's writing settings, plus how to write (outline first or one pass) and LLM-only."""

    sampling: bool = True
    num_beams: int = 1
    repetition_penalty: float = 1.005
    max_new_tokens: int = 2048
    seed: int | None = None
    use_meta: bool = False
    plan_first: bool = True
    llm_only: bool = False
    hd_num_single: int = 24
    hd_num_multi: int = 6


@dataclass(frozen=True)
class Figure:
    """The image after a paragraph: its caption (the search query), the candidates found, the one chosen."""

    caption: str | None = None
    candidates: tuple[str, ...] | None = None
    key: str | None = None


@dataclass(frozen=True)
class Paragraph:
    text: str
    figure: Figure | None = None


@dataclass(frozen=True)
class Content:
    """What undo and redo restore."""

    outline: str = ""
    draft: str = ""
    paragraphs: tuple[Paragraph, ...] = ()
    stage: str = "outline"
    source: str = ""
    """Where the images come from: "library", "uploads" (the reference images alone) or "" (not decided)."""


@dataclass(frozen=True)
class StepStats:
    """One step's cost: engine calls, tokens (prompt, served from the prefix cache, generated) and time."""

    step: str
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Article:
    id: str
    owner: str
    title: str = DEFAULT_TITLE
    created: float = 0.0
    updated: float = 0.0
    instruction: str = ""
    references: tuple[str, ...] = ()
    n_images: int | None = None
    target_length: int | None = None
    settings: WritingSettings = field(default_factory=WritingSettings)
    content: Content = field(default_factory=Content)
    stats: tuple[StepStats, ...] = ()
    notes: tuple[str, ...] = ()
    undo_stack: tuple[Content, ...] = ()
    redo_stack: tuple[Content, ...] = ()

    @property
    def paragraphs(self) -> tuple[Paragraph, ...]:
        return self.content.paragraphs

    @property
    def stage(self) -> str:
        return self.content.stage

    @property
    def image_keys(self) -> tuple[str, ...]:
        """The chosen images, in article order."""
        return tuple(p.figure.key for p in self.paragraphs if p.figure and p.figure.key)

    @property
    def media_keys(self) -> frozenset[str]:
        """Every stored file this article refers to, the undo history included (undo may bring them back)."""
        keys = set(self.references)
        for content in (self.content, *self.undo_stack, *self.redo_stack):
            for p in content.paragraphs:
                if p.figure:
                    keys.update(p.figure.candidates or ())
                    keys.update((p.figure.key,) if p.figure.key else ())
        return frozenset(keys)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        return cls(
            **{
                **_known(cls, data),
                "references": tuple(data.get("references", ())),
                "settings": WritingSettings(**_known(WritingSettings, data.get("settings", {}))),
                "content": _content(data.get("content", {})),
                "stats": tuple(StepStats(**_known(StepStats, s)) for s in data.get("stats", ())),
                "notes": tuple(data.get("notes", ())),
                "undo_stack": tuple(_content(c) for c in data.get("undo_stack", ())),
                "redo_stack": tuple(_content(c) for c in data.get("redo_stack", ())),
            }
        )


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _figure(data: dict[str, Any] | None) -> Figure | None:
    if data is None:
        return None
    candidates = data.get("candidates")
    return Figure(data.get("caption"), None if candidates is None else tuple(candidates), data.get("key"))


def _content(data: dict[str, Any]) -> Content:
    paragraphs = tuple(Paragraph(p["text"], _figure(p.get("figure"))) for p in data.get("paragraphs", ()))
    return Content(
        data.get("outline", ""),
        data.get("draft", ""),
        paragraphs,
        data.get("stage", "outline"),
        data.get("source", ""),
    )


def new_article_id() -> str:
    return secrets.token_urlsafe(12)


def first_step(settings: WritingSettings) -> Step:
    return "outline" if settings.plan_first else "draft"


def new_article(
    owner: str,
    instruction: str,
    *,
    references: tuple[str, ...] = (),
    n_images: int | None = None,
    target_length: int | None = None,
    settings: WritingSettings | None = None,
    now: float | None = None,
) -> Article:
    now = time.time() if now is None else now
    settings = settings or WritingSettings()
    return Article(
        id=new_article_id(),
        owner=owner,
        title=title_from(instruction),
        created=now,
        updated=now,
        instruction=instruction,
        references=references,
        n_images=n_images,
        target_length=target_length,
        settings=settings,
        content=Content(stage=first_step(settings)),
    )


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return (line[: TITLE_CHARS - 1] + "…" if len(line) > TITLE_CHARS else line) or DEFAULT_TITLE


def touch(article: Article, now: float | None = None) -> Article:
    return replace(article, updated=time.time() if now is None else now)


def change(article: Article, content: Content, *, record: bool = True) -> Article:
    """The article with new content; `record` puts the old content on the undo stack (and clears redo)."""
    if not record or content == article.content:
        return touch(replace(article, content=content))
    undo_stack = (*article.undo_stack, article.content)[-UNDO_DEPTH:]
    return touch(replace(article, content=content, undo_stack=undo_stack, redo_stack=()))


def undo(article: Article) -> Article:
    if not article.undo_stack:
        raise ArticleError(say("error.nothing_to_undo"))
    return touch(
        replace(
            article,
            content=article.undo_stack[-1],
            undo_stack=article.undo_stack[:-1],
            redo_stack=(*article.redo_stack, article.content),
        )
    )


def redo(article: Article) -> Article:
    if not article.redo_stack:
        raise ArticleError(say("error.nothing_to_redo"))
    return touch(
        replace(
            article,
            content=article.redo_stack[-1],
            redo_stack=article.redo_stack[:-1],
            undo_stack=(*article.undo_stack, article.content),
        )
    )


def rename(article: Article, title: str) -> Article:
    title = " ".join(title.split())
    if not title:
        raise ArticleError(say("error.no_title"))
    return touch(replace(article, title=title[:200]))


def reset_from(content: Content, step: Step) -> Content:
    """The content with what `step` and the steps after it produced taken away, ready to run `step` again."""
    order = STEPS.index(step)
    paragraphs = content.paragraphs
    if order <= STEPS.index("slots"):
        paragraphs = tuple(Paragraph(p.text) for p in paragraphs)
    elif step == "captions":
        paragraphs = tuple(replace(p, figure=Figure()) if p.figure else p for p in paragraphs)
    elif step == "candidates":
        paragraphs = tuple(replace(p, figure=Figure(p.figure.caption)) if p.figure else p for p in paragraphs)
    else:
        paragraphs = tuple(
            replace(p, figure=replace(p.figure, key=None)) if p.figure else p for p in paragraphs
        )
    return replace(
        content,
        outline="" if step == "outline" else content.outline,
        draft="" if order <= STEPS.index("draft") else content.draft,
        paragraphs=() if order <= STEPS.index("draft") else paragraphs,
        stage=step,
        source="" if order <= STEPS.index("slots") else content.source,
    )


def with_draft(content: Content, draft: str) -> Content:
    """A (new or hand-edited) draft, split into paragraphs without images."""
    return replace(content, draft=draft, paragraphs=tuple(Paragraph(p) for p in split_paragraphs(draft)))


def paragraph_at(article: Article, index: int) -> Paragraph:
    if not 0 <= index < len(article.paragraphs):
        raise ArticleError(say("error.no_such_paragraph", n=index + 1, count=len(article.paragraphs)))
    return article.paragraphs[index]


def set_paragraphs(article: Article, paragraphs: tuple[Paragraph, ...]) -> Article:
    return change(article, replace(article.content, paragraphs=paragraphs))


def shown_draft(article: Article) -> str:
    """The draft as the user sees it: the paragraphs as they stand (edits included), one per line."""
    return "\n".join(p.text for p in article.paragraphs) if article.paragraphs else article.content.draft
