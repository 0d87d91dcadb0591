"""One composition run: the steps from the article's stage to the end, each streamed and stoppable.

outline -> draft -> image slots -> a caption per slot -> candidates from the library -> the model's choice.
Each step reads the article, calls the engine through the runner (at most one call per slot), writes its
result into the article and moves the stage on. The article is saved while text streams, at the end of every
step and however the run ends (finished, stopped by closing the iterator, failed), and the content it had
before the run goes on the undo stack. A stopped run leaves the stage where it stopped: a half-written
outline or draft is continued (sent back as the assistant prefill), and slots already captioned or chosen
are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from ixc_app.chat.runner import EngineRunner
from ixc_app.compose.article import (
    DONE,
    UNDO_DEPTH,
    Article,
    Content,
    Figure,
    Paragraph,
    StepStats,
    touch,
    with_draft,
)
from ixc_app.compose.errors import ComposeFailed
from ixc_app.compose.library import CANDIDATES, Library
from ixc_app.compose.requests import DoesNotFit, Planner
from ixc_app.compose.strings import say
from ixc_app.engines.base import EngineError, Request
from ixc_app.ixc.compose_parse import fallback_caption, parse_caption, parse_choice, parse_slots, spread

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 1.0
Save = Callable[[Article], Article]


class Composition:
    """The bookkeeping of one run: the article so far and the costs of each step."""

    def __init__(
        self, article: Article, runner: EngineRunner, planner: Planner, library: Library, save: Save
    ):
        self.article = article
        self.runner = runner
        self.planner = planner
        self.library = library
        self._save = save
        self._saved_at = 0.0
        self._saved: Article | None = None

    # The run

    def run(self, *, single_step: bool = False) -> Iterator[str]:
        """Yield a status line whenever the article changed; `self.article` is the article so far."""
        start = self.article
        self.article = replace(self.article, notes=self.planner.notes(self.article.settings))
        steps = {
            "outline": self._outline,
            "draft": self._draft,
            "slots": self._slots,
            "captions": self._captions,
            "candidates": self._candidates,
            "select": self._select,
        }
        try:
            while self.article.stage != DONE:
                step = self.article.stage
                self._stats(step, reset=True)
                for status in steps[step]():
                    self.save(force=False)
                    yield status
                self.save(force=True)
                yield say("status.finished", step=say(f"step.{step}"))
                if single_step:
                    break
            self._settle(start)
            if self.article.stage == DONE:
                yield say(
                    "status.done",
                    paragraphs=len(self.article.paragraphs),
                    images=len(self.article.image_keys),
                )
        finally:
            self._settle(start)

    def _settle(self, start: Article) -> None:
        """Put the content the run started from on the undo stack (once) and save."""
        if self.article.content != start.content and self.article.undo_stack == start.undo_stack:
            undo_stack = (*start.undo_stack, start.content)[-UNDO_DEPTH:]
            self.article = replace(self.article, undo_stack=undo_stack, redo_stack=())
        self.save(force=True)

    def save(self, *, force: bool) -> None:
        now = time.monotonic()
        if self.article == self._saved:
            return
        if force or now - self._saved_at >= SAVE_INTERVAL_S:
            self.article = self._saved = self._save(touch(self.article))
            self._saved_at = now

    def _set(self, content: Content) -> None:
        self.article = replace(self.article, content=content)

    def _note(self, key: str, **values: object) -> None:
        note = say(key, **values)
        if note not in self.article.notes:
            self.article = replace(self.article, notes=(*self.article.notes, note))

    def _stats(self, step: str, *, reset: bool = False, **add: float) -> None:
        entries = {s.step: s for s in self.article.stats}
        current = StepStats(step) if reset or step not in entries else entries[step]
        entries[step] = replace(current, **{k: getattr(current, k) + v for k, v in add.items()})
        self.article = replace(self.article, stats=tuple(entries.values()))

    def _call(self, step: str, request: Request, on_text: Callable[[str], None]) -> Iterator[str]:
        """Stream one engine answer into `on_text`; return the whole answer (via StopIteration)."""
        started = time.perf_counter()
        stream = self.runner.stream(request)
        text, finished = "", None
        try:
            for snapshot in stream:
                text, finished = snapshot.text, snapshot.finished or finished
                on_text(text)
                yield say("status.running", step=say(f"step.{step}"))
        except EngineError as exc:
            raise ComposeFailed(
                say("error.failed", step=say(f"step.{step}"), reason=str(exc).rstrip("."))
            ) from exc
        except Exception as exc:
            log.exception("the engine failed during the %s step of article %s", step, self.article.id)
            raise ComposeFailed(say("error.unexpected", step=say(f"step.{step}"))) from exc
        finally:
            stream.close()
            self._stats(
                step,
                calls=1,
                prompt_tokens=finished.prompt_tokens if finished else 0,
                cached_tokens=finished.cached_tokens if finished else 0,
                generated_tokens=finished.generated_tokens if finished else 0,
                seconds=time.perf_counter() - started,
            )
        return text

    def _request(self, step: str, build: Callable[[], Request]) -> Request:
        try:
            return build()
        except DoesNotFit as exc:
            raise ComposeFailed(
                say("error.context", step=say(f"step.{step}"), tokens=exc.tokens, limit=exc.limit)
            ) from exc

    # Steps

    def _outline(self) -> Iterator[str]:
        continued = self.article.content.outline
        request = self._request("outline", lambda: self.planner.outline(self.article, continued))
        text = yield from self._call(
            "outline", request, lambda t: self._set(replace(self.article.content, outline=continued + t))
        )
        self._set(replace(self.article.content, outline=(continued + text).strip(), stage="draft"))

    def _draft(self) -> Iterator[str]:
        continued = self.article.content.draft
        request = self._request("draft", lambda: self.planner.draft(self.article, continued))
        text = yield from self._call(
            "draft", request, lambda t: self._set(with_draft(self.article.content, continued + t))
        )
        content = with_draft(self.article.content, (continued + text).strip())
        if not content.paragraphs:
            raise ComposeFailed(say("error.no_paragraphs"))
        self._set(replace(content, stage=DONE if self.article.settings.llm_only else "slots"))

    def _source(self) -> str:
        """Where images come from: the library, the reference uploads alone (the official behaviour when
        there is no library), or nowhere."""
        refs = set(self.article.references)
        if any(k not in refs for k in self.library.pool(self.article.owner)):
            return "library"
        return "uploads" if refs else ""

    def _slots(self) -> Iterator[str]:
        article = self.article
        texts = [p.text for p in article.paragraphs]
        if not texts:
            raise ComposeFailed(say("error.no_paragraphs"))
        source = self._source()
        if not source:
            self._note("note.no_images")
            self._set(replace(article.content, stage=DONE))
            return
        uploads = article.references if source == "uploads" else ()
        wanted = article.n_images
        if uploads:
            wanted = min(wanted or len(uploads), len(uploads))
        slots: tuple[int, ...] | None = None
        for shown in (uploads, ()) if uploads else ((),):
            try:
                request = self.planner.slots(article, shown, wanted)
            except DoesNotFit:
                continue
            answer = yield from self._call("slots", request, lambda t: None)
            slots = parse_slots(answer, len(texts), wanted)
            break
        if slots is None:
            self._note("note.context_slots")
            slots = spread(len(texts), wanted or max(1, len(texts) // 3))
        caption = None if source == "library" else ""
        paragraphs = tuple(
            Paragraph(p.text, Figure(caption=caption) if i in slots else None)
            for i, p in enumerate(article.paragraphs)
        )
        stage = "captions" if source == "library" else "select"
        self._set(replace(article.content, paragraphs=paragraphs, stage=stage, source=source))

    def _put_figure(self, index: int, figure: Figure) -> None:
        paragraphs = list(self.article.paragraphs)
        paragraphs[index] = replace(paragraphs[index], figure=figure)
        self._set(replace(self.article.content, paragraphs=tuple(paragraphs)))

    def _figures(self) -> list[int]:
        return [i for i, p in enumerate(self.article.paragraphs) if p.figure is not None]

    def _captions(self) -> Iterator[str]:
        slots = self._figures()
        for n, index in enumerate(slots, 1):
            figure = self.article.paragraphs[index].figure
            if figure is None or figure.caption is not None:
                continue
            yield say("status.caption", n=n, total=len(slots))
            earlier = [
                (i, f.caption)
                for i in slots
                if i < index and (f := self.article.paragraphs[i].figure) and f.caption is not None
            ]
            paragraph = self.article.paragraphs[index].text
            try:
                request = self.planner.caption(self.article, index, earlier)
            except DoesNotFit:
                self._note("note.context_caption", n=index + 1)
                self._put_figure(index, replace(figure, caption=fallback_caption(paragraph)))
                continue
            answer = yield from self._call("captions", request, lambda t: None)
            self._put_figure(index, replace(figure, caption=parse_caption(answer, paragraph)))
        self._set(replace(self.article.content, stage="candidates"))

    def _candidates(self) -> Iterator[str]:
        owner, taken = self.article.owner, list(self.article.image_keys)
        for index in self._figures():
            figure = self.article.paragraphs[index].figure
            if figure is None:
                continue
            if figure.candidates is None:
                query = figure.caption or fallback_caption(self.article.paragraphs[index].text)
                strict = self.library.search(owner, query, exclude=taken)
                loose = self.library.search(owner, query, exclude=[*self.article.image_keys, *strict])
                candidates = (*strict, *loose)[:CANDIDATES]
                self._put_figure(index, replace(figure, candidates=candidates))
                figure = self.article.paragraphs[index].figure
            taken.extend(figure.candidates or ())
            yield say("status.running", step=say("step.candidates"))
        self._set(replace(self.article.content, stage="select"))

    def _select(self) -> Iterator[str]:
        slots = self._figures()
        source = self.article.content.source
        for n, index in enumerate(slots, 1):
            figure = self.article.paragraphs[index].figure
            if figure is None or figure.key is not None:
                continue
            yield say("status.select", n=n, total=len(slots))
            used = set(self.article.image_keys)
            if source == "uploads":
                available = tuple(k for k in self.article.references if k not in used)
            else:
                available = tuple(k for k in figure.candidates or () if k not in used)
                if not available:
                    query = figure.caption or fallback_caption(self.article.paragraphs[index].text)
                    available = self.library.search(self.article.owner, query, exclude=sorted(used))
            if not available:
                continue
            choice = 0
            if len(available) > 1:
                choice = yield from self._choose(index, available)
            self._put_figure(index, replace(figure, candidates=available, key=available[choice]))
        placed, wanted = len(self.article.image_keys), len(slots)
        if placed < wanted:
            self._note("note.fewer_images", found=placed, wanted=wanted)
        self._set(replace(self.article.content, stage=DONE))

    def _choose(self, index: int, available: tuple[str, ...]) -> Iterator[str]:
        """The model's pick among `available`; when the prompt does not fit, the images already chosen are
        left out of its context first (earliest first), then the later candidates."""
        chosen = [
            (i, p.figure.key)
            for i, p in enumerate(self.article.paragraphs)
            if i < index and p.figure and p.figure.key
        ]
        attempts = [(chosen[drop:], len(available)) for drop in range(len(chosen) + 1)]
        attempts += [([], n) for n in range(len(available) - 1, 1, -1)]
        for context, shown in attempts:
            try:
                request = self.planner.selection(self.article, index, context, available[:shown])
            except DoesNotFit:
                continue
            if (len(context), shown) != (len(chosen), len(available)):
                self._note("note.context_select", shown=shown, n=index + 1)
            answer = yield from self._call("select", request, lambda t: None)
            return parse_choice(answer, shown)
        self._note("note.context_select_none", n=index + 1)
        return 0
