"""From an article to the engine request of each composer step, sized to the engine's context.

This is the one place that adapts the trained formats to what the engine declares: write mode where it has
one (else base mode, noted once in the article), beam search where it has it (else sampling, noted), stop
strings where it honours them (the caption parser cuts at the closing quote anyway), and the answer length
that still fits the context. `Request.prefill` is always sent; an engine that cannot prefill emulates it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ixc_app.compose.article import Article, WritingSettings
from ixc_app.compose.strings import say
from ixc_app.engines.base import EngineCapabilities, GenerationParams, Request
from ixc_app.ixc import compose as formats
from ixc_app.ixc.prompt import ImageRef, Mode, Turn
from ixc_app.ixc.template import CHAT_META, WRITE_META, build_prompt
from ixc_app.ixc.tokenizer import Tokenizer

SLOT_TOKENS = 200
CAPTION_TOKENS = 200
SELECTION_TOKENS = 10
EDIT_TOKENS = 500
LIBRARY_CAPTION_TOKENS = 80

ImageOf = Callable[[str], ImageRef]
"""The model's view of a stored image, by key."""


class DoesNotFit(ValueError):
    """The prompt alone leaves no room for an answer in the engine's context."""

    def __init__(self, tokens: int, limit: int) -> None:
        self.tokens = tokens
        self.limit = limit
        super().__init__(f"{tokens} prompt tokens, context {limit}")


@dataclass(frozen=True)
class Planner:
    """Builds the requests for one engine (its capabilities, tokenizer and usable context)."""

    capabilities: EngineCapabilities
    tokenizer: Tokenizer
    context_limit: int
    image_of: ImageOf

    @property
    def mode(self) -> Mode:
        return "write" if "write" in self.capabilities.modes else "base"

    def notes(self, settings: WritingSettings) -> tuple[str, ...]:
        """What the article should say about how this engine writes it."""
        notes = []
        if self.mode != "write":
            notes.append(say("note.base_mode"))
        if settings.num_beams > 1 and not self.capabilities.supports_beam_search:
            notes.append(say("note.no_beams", beams=settings.num_beams))
        return tuple(notes)

    def engine_notes(self) -> tuple[str, ...]:
        """What this engine lacks that the writing settings offer, said once in the settings panel: the
        notes' keys in `strings.STRINGS` (the page shows them as static text, in its language)."""
        notes = ["note.base_mode"] if self.mode != "write" else []
        if not self.capabilities.supports_beam_search:
            notes.append("note.beam_search")
        return tuple(notes)

    def params(self, settings: WritingSettings, max_new_tokens: int, *, writing: bool) -> GenerationParams:
        """The demo's sampling (top_p 0.8, top_k 40); the user's beams, penalty and sampling for writing."""
        beams = settings.num_beams if writing and self.capabilities.supports_beam_search else 1
        sampling = settings.sampling or (writing and settings.num_beams > 1 and beams == 1)
        return GenerationParams(
            max_new_tokens=max_new_tokens,
            do_sample=sampling if writing else True,
            temperature=1.0,
            top_p=0.8,
            top_k=40,
            repetition_penalty=settings.repetition_penalty if writing else 1.005,
            seed=settings.seed,
            num_beams=beams,
            length_penalty=1.0,
        )

    def request(
        self,
        text: str,
        images: Sequence[ImageRef],
        settings: WritingSettings,
        *,
        max_new_tokens: int,
        writing: bool = False,
        prefill: str = "",
        system: str | None = None,
        stop: tuple[str, ...] = (),
        mode: Mode | None = None,
    ) -> Request:
        """One user turn; `DoesNotFit` when no answer token fits after the prompt."""
        turns = (Turn("user", text, tuple(images)),)
        hd = (settings.hd_num_single, settings.hd_num_multi)
        prompt = build_prompt(
            turns,
            self.tokenizer,
            meta_instruction=system,
            prefill=prefill,
            hd_num_single=hd[0],
            hd_num_multi=hd[1],
        )
        room = self.context_limit - prompt.num_tokens
        if room < 1:
            raise DoesNotFit(prompt.num_tokens, self.context_limit)
        return Request(
            turns=turns,
            params=self.params(settings, min(max_new_tokens, room), writing=writing),
            mode=self.mode if mode is None else mode,
            meta_instruction=system,
            prefill=prefill,
            stop=stop if self.capabilities.supports_stop else (),
            hd_num_single=hd[0],
            hd_num_multi=hd[1],
        )

    def _meta(self, settings: WritingSettings) -> str | None:
        return WRITE_META if settings.use_meta else None

    def question(self, article: Article) -> str:
        return formats.with_target_length(article.instruction, article.target_length)

    def outline(self, article: Article, continued: str) -> Request:
        refs = [self.image_of(k) for k in article.references]
        text = formats.outline_prompt(self.question(article), len(refs))
        return self._write(article, text, refs, continued)

    def draft(self, article: Article, continued: str) -> Request:
        refs = [self.image_of(k) for k in article.references]
        question = self.question(article)
        if article.settings.plan_first:
            text = formats.essay_prompt(question, article.content.outline, len(refs))
        else:
            text = formats.article_prompt(question, len(refs))
        return self._write(article, text, refs, continued)

    def _write(self, article: Article, text: str, refs: list[ImageRef], continued: str) -> Request:
        s = article.settings
        return self.request(
            text,
            refs,
            s,
            max_new_tokens=s.max_new_tokens,
            writing=True,
            prefill=continued,
            system=self._meta(s),
        )

    def slots(self, article: Article, uploads: Sequence[str], wanted: int | None) -> Request:
        texts = [p.text for p in article.paragraphs]
        refs = [self.image_of(k) for k in uploads]
        text = formats.slot_prompt(texts, wanted, len(refs))
        s = article.settings
        return self.request(
            text, refs, s, max_new_tokens=SLOT_TOKENS, prefill=formats.SLOT_PREFILL, system=self._meta(s)
        )

    def caption(self, article: Article, slot: int, earlier: Sequence[tuple[int, str]]) -> Request:
        texts = [p.text for p in article.paragraphs]
        return self.request(
            formats.caption_prompt(texts, slot, earlier),
            (),
            article.settings,
            max_new_tokens=CAPTION_TOKENS,
            prefill=formats.CAPTION_PREFILL,
            system=formats.CAPTION_SYSTEM,
            stop=formats.CAPTION_STOP,
        )

    def selection(
        self, article: Article, slot: int, chosen: Sequence[tuple[int, str]], candidates: Sequence[str]
    ) -> Request:
        """Choose among `candidates` for the slot after paragraph `slot`; `chosen` are (paragraph, key) of the
        images already in the article before it."""
        texts = [p.text for p in article.paragraphs]
        text = formats.selection_prompt(texts, [i for i, _ in chosen], slot, len(candidates))
        images = [self.image_of(k) for _, k in chosen] + [self.image_of(k) for k in candidates]
        s = article.settings
        return self.request(
            text,
            images,
            s,
            max_new_tokens=SELECTION_TOKENS,
            prefill=formats.SELECTION_PREFILL,
            system=self._meta(s),
        )

    def edit(self, article: Article, action: formats.ModelEdit, index: int, instruction: str) -> Request:
        paragraphs = article.paragraphs
        before = paragraphs[index - 1].text if index > 0 else ""
        after = paragraphs[index + 1].text if index + 1 < len(paragraphs) else ""
        text = formats.edit_prompt(action, paragraphs[index].text, instruction, before, after)
        s = article.settings
        return self.request(text, (), s, max_new_tokens=EDIT_TOKENS, system=self._meta(s), mode="base")

    def library_caption(self, key: str, settings: WritingSettings) -> Request:
        return self.request(
            formats.LIBRARY_CAPTION_PROMPT,
            (self.image_of(key),),
            settings,
            max_new_tokens=LIBRARY_CAPTION_TOKENS,
            system=CHAT_META,
            mode="base",
        )
