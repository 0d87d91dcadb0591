"""The native engine: `Engine.stream` over our own PyTorch IXC-2.5, for many callers at once.

A stream builds the prompt with the chat template, checks it, reads the pixels of images whose features are
not cached, and hands the request to the scheduler thread, which owns the model (see `scheduler`): requests
are batched, prefixes any caller has sent before are reused by content (`prefix_cache`), and long prompts
are prefilled in chunks. The stream turns the tokens it gets back into text on its own thread, hides stop
tokens, and ends the answer at the first stop string. Closing the stream or setting `cancel` ends the
request within one chunk or one decode step.

Beam search (`num_beams` > 1) cannot show text before the search ends (the best beam changes until then),
so its answer arrives as one piece at the end; stop strings then cut that answer.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ixc_app.engines.base import (
    BadRequest,
    ContextTooLong,
    EngineCapabilities,
    EngineUnavailable,
    Finished,
    ImageReader,
    Overloaded,
    Request,
    StreamItem,
)
from ixc_app.engines.native.generate import TokenStream, stream_text
from ixc_app.engines.native.jobs import Done, Event, Job, Started, Tokens
from ixc_app.engines.native.model import NativeModel
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.engines.native.prefix_cache import FeatureCache, PrefixCache, image_key, position_keys
from ixc_app.engines.native.scheduler import Scheduler, shut_down
from ixc_app.i18n import tr
from ixc_app.ixc.prompt import Prompt, TextSegment
from ixc_app.ixc.template import build_prompt
from ixc_app.ixc.tokenizer import IncrementalDecoder, Tokenizer

MAX_BEAMS = 6
"""The official composer offers 1 to 6 beams."""


@dataclasses.dataclass
class _Progress:
    cached: int = 0
    generated: int = 0
    first_token_at: float | None = None


class NativeEngine:
    """`Engine` over a loaded `NativeModel`; see the module docstring.

    `batch_limit` sequences decode together (a beam counts as one; `max_concurrency` follows it);
    `cache_budget_bytes` bounds all KV memory, running requests' caches and cached prefixes together;
    `prefill_chunk` positions are prefilled per forward pass. `compile` compiles the decode step.
    """

    def __init__(
        self,
        model: NativeModel,
        *,
        read_image: ImageReader,
        cache_budget_bytes: int,
        feature_cache_bytes: int,
        batch_limit: int,
        prefill_chunk: int,
        context_length: int | None = None,
        is_demo_model: bool = False,
        compile: bool = False,
    ) -> None:
        if model.tokenizer is None:
            raise EngineUnavailable(
                "The model was loaded without its tokenizer; load it with from_pretrained."
            )
        self.model = model
        self.read_image = read_image
        self.tokenizer: Tokenizer = model.tokenizer
        self.capabilities = EngineCapabilities(
            name="native",
            modes=frozenset(model.supported_modes),
            supports_prefill=True,
            supports_beam_search=True,
            supports_stop=True,
            prefix_cache=True,
            max_concurrency=batch_limit,
            context_length=context_length or model.config.max_position_embeddings,
            is_demo_model=is_demo_model,
        )
        if compile:
            model.compile_decode()
        self.prefix = PrefixCache()
        self.features = FeatureCache(feature_cache_bytes)
        self._stop_ids = frozenset(self.tokenizer.stop_ids)
        self.scheduler = Scheduler(
            model,
            batch_limit=batch_limit,
            prefill_chunk=prefill_chunk,
            kv_budget_bytes=cache_budget_bytes,
            prefix=self.prefix,
            features=self.features,
            read_image=read_image,
            stop_ids=self._stop_ids,
        )
        self._closed = False

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **options: object,
    ) -> NativeEngine:
        """Load a checkpoint folder and wrap it in an engine (`options` as for the constructor)."""
        model = NativeModel.from_pretrained(path, device=device, dtype=dtype)
        return cls(model, **options)  # type: ignore[arg-type]

    @property
    def steps_run(self) -> int:
        """Forward passes run: prefill chunks and decode steps (one per step, however many it decodes)."""
        return self.scheduler.steps_run

    @property
    def prefill_chunks_run(self) -> int:
        return self.scheduler.prefill_chunks_run

    def reload(self, model: NativeModel) -> None:
        """Serve another model (new weights) from now on; nothing computed with the old one is reused."""
        if model.tokenizer is None:
            raise EngineUnavailable(
                "The model was loaded without its tokenizer; load it with from_pretrained."
            )
        self.scheduler.reload(model)
        self.model, self.tokenizer = model, model.tokenizer
        self.capabilities = dataclasses.replace(self.capabilities, modes=frozenset(model.supported_modes))

    def close(self) -> None:
        self._closed = True
        self.scheduler.close()
        self.prefix.clear()
        self.features.clear()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        started = time.perf_counter()
        if self._closed:
            raise shut_down()
        prompt = self._prompt(request)
        keys = position_keys(prompt)
        job = Job(
            prompt=prompt,
            keys=keys,
            mode=request.mode,
            params=request.params,
            prefill_ids=tuple(self.tokenizer.encode(request.prefill, bos=False)) if request.prefill else (),
            pixels=self._pixels(prompt, self.prefix.cached(request.mode, keys, prompt.num_tokens - 1)),
            cancel=cancel,
        )
        self.scheduler.submit(job)
        progress = _Progress()
        reason = yield from stream_text(
            self._tokens(job, progress), IncrementalDecoder(self.tokenizer), self._stop_ids, request.stop
        )
        first = progress.first_token_at
        yield Finished(
            finish_reason=reason,
            prompt_tokens=prompt.num_tokens,
            generated_tokens=progress.generated,
            cached_tokens=progress.cached,
            time_to_first_token_s=(first - started) if first is not None else 0.0,
            total_s=time.perf_counter() - started,
        )

    def _prompt(self, request: Request) -> Prompt:
        """The request's prompt, or the typed error saying why it cannot be answered."""
        if request.mode not in self.capabilities.modes:
            modes = ", ".join(sorted(self.capabilities.modes))
            raise BadRequest(
                tr("This model has no {mode!r} mode; use one of {modes}.", mode=request.mode, modes=modes)
            )
        if request.params.max_new_tokens < 1:
            raise BadRequest(tr("max_new_tokens must be at least 1; ask for at least one token."))
        if not 1 <= request.params.num_beams <= MAX_BEAMS:
            raise BadRequest(
                tr("num_beams must be between 1 and {most}; ask for fewer beams.", most=MAX_BEAMS)
            )
        try:
            prompt = build_prompt(
                request.turns,
                self.tokenizer,
                meta_instruction=request.meta_instruction,
                prefill=request.prefill,
                hd_num_single=request.hd_num_single,
                hd_num_multi=request.hd_num_multi,
                first_image=request.first_image,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        needed = prompt.num_tokens + request.params.max_new_tokens
        limit = self.capabilities.context_length
        if needed > limit:
            raise ContextTooLong(
                tr(
                    "The prompt ({prompt} tokens) plus up to {new} new tokens exceeds the model's context of "
                    "{limit} tokens; shorten the conversation or send fewer images.",
                    prompt=prompt.num_tokens,
                    new=request.params.max_new_tokens,
                    limit=limit,
                )
            )
        return prompt

    def _pixels(self, prompt: Prompt, cached: int) -> dict[tuple[str, int], torch.Tensor]:
        """Pixels of the images the prefill will need (not in the prefix cache's first `cached` positions,
        nor in the feature cache), read here so the model never waits on image decoding; a bad file is a
        `BadRequest` before anything is queued. Should the caches drop them meanwhile, the scheduler reads
        the files itself."""
        pixels, position = {}, 0
        for segment in prompt.segments:
            if isinstance(segment, TextSegment):
                position += len(segment.token_ids)
                continue
            position += segment.num_tokens
            if position > cached and segment not in self.features:
                pixels[image_key(segment)] = image_pixels(segment, self.read_image)
        return pixels

    def _tokens(self, job: Job, progress: _Progress) -> TokenStream:
        """The job's tokens as they come; closing this generator ends the job."""
        try:
            while True:
                event = self._next_event(job)
                if isinstance(event, Started):
                    progress.cached = event.cached_tokens
                elif isinstance(event, Tokens):
                    if progress.first_token_at is None:
                        progress.first_token_at = time.perf_counter()
                    for token in event.ids:
                        progress.generated += 1
                        yield token
                elif isinstance(event, Done):
                    return event.reason
                else:
                    _raise(event.error)
        finally:
            job.closed = True

    def _next_event(self, job: Job) -> Event:
        while True:
            try:
                return job.events.get(timeout=1.0)
            except queue.Empty:
                if not self.scheduler.alive:
                    raise shut_down() from None


def _raise(error: BaseException) -> None:
    """Raise what the scheduler met, in the stream; running out of GPU memory is a temporary overload."""
    if isinstance(error, torch.OutOfMemoryError):
        raise Overloaded(
            tr(
                "The GPU ran out of memory for this request; try again shortly, or with a shorter "
                "conversation or fewer images."
            )
        ) from error
    raise error
