"""The native engine: `Engine.stream` over our own PyTorch IXC-2.5, with per-conversation KV reuse.

One request: build the prompt with the chat template, roll the conversation's cache back to what the prompt
shares with it, encode the images not cached yet, prefill the rest in one forward pass, then decode token by
token. Every forward pass (and image encoding) holds one lock, so requests from several threads are safe and
the model runs one at a time (`max_concurrency=1`); the lock is never held while a stream waits for its
consumer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ixc_app.engines.base import (
    BadRequest,
    Cancelled,
    ContextTooLong,
    EngineCapabilities,
    EngineUnavailable,
    Finished,
    FinishReason,
    ImageReader,
    Request,
    StreamItem,
)
from ixc_app.engines.native.generate import DecodeStats, decode_tokens, stream_text
from ixc_app.engines.native.model import KVCache, NativeModel
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.engines.native.sessions import FeatureCache, Session, SessionStore
from ixc_app.ixc.prompt import ImageSegment, Prompt
from ixc_app.ixc.template import build_prompt
from ixc_app.ixc.tokenizer import IncrementalDecoder, Tokenizer


class NativeEngine:
    """`Engine` over a loaded `NativeModel`; see the module docstring.

    `steps_run` counts the model's forward passes (one prefill per request, one per further token), so callers
    can see that a cancelled request stopped computing.
    """

    def __init__(
        self,
        model: NativeModel,
        *,
        read_image: ImageReader,
        cache_budget_bytes: int,
        feature_cache_bytes: int,
        context_length: int | None = None,
        is_demo_model: bool = False,
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
            supports_beam_search=False,
            supports_stop=True,
            prefix_cache=False,
            max_concurrency=1,
            context_length=context_length or model.config.max_position_embeddings,
            is_demo_model=is_demo_model,
        )
        self.sessions = SessionStore(cache_budget_bytes)
        self.features = FeatureCache(feature_cache_bytes)
        self.steps_run = 0
        self._stop_ids = frozenset(self.tokenizer.stop_ids)
        self._compute = threading.Lock()
        self._closed = False

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        read_image: ImageReader,
        cache_budget_bytes: int,
        feature_cache_bytes: int,
        context_length: int | None = None,
        is_demo_model: bool = False,
    ) -> NativeEngine:
        """Load a checkpoint folder and wrap it in an engine."""
        return cls(
            NativeModel.from_pretrained(path, device=device, dtype=dtype),
            read_image=read_image,
            cache_budget_bytes=cache_budget_bytes,
            feature_cache_bytes=feature_cache_bytes,
            context_length=context_length,
            is_demo_model=is_demo_model,
        )

    def close(self) -> None:
        self._closed = True
        self.sessions.clear()
        self.features.clear()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        started = time.perf_counter()
        if self._closed:
            raise EngineUnavailable("The model engine has been shut down; restart the app to chat again.")
        prompt = self._prompt(request)
        with self.sessions.use(request.session_id) as session:
            yield from self._answer(request, prompt, session, cancel, started)

    def _prompt(self, request: Request) -> Prompt:
        """The request's prompt, or the typed error saying why it cannot be answered."""
        if request.mode not in self.capabilities.modes:
            modes = ", ".join(sorted(self.capabilities.modes))
            raise BadRequest(f"This model has no {request.mode!r} mode; use one of {modes}.")
        if request.params.max_new_tokens < 1:
            raise BadRequest("max_new_tokens must be at least 1; ask for at least one token.")
        if request.params.num_beams != 1:
            raise BadRequest("This engine has no beam search; ask for one beam (sampling or greedy).")
        try:
            prompt = build_prompt(
                request.turns,
                self.tokenizer,
                meta_instruction=request.meta_instruction,
                prefill=request.prefill,
                hd_num_single=request.hd_num_single,
                hd_num_multi=request.hd_num_multi,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        needed = prompt.num_tokens + request.params.max_new_tokens
        limit = self.capabilities.context_length
        if needed > limit:
            raise ContextTooLong(
                f"The prompt ({prompt.num_tokens} tokens) plus up to {request.params.max_new_tokens} new "
                f"tokens exceeds the model's context of {limit} tokens; shorten the conversation or send "
                "fewer images."
            )
        return prompt

    def _answer(
        self,
        request: Request,
        prompt: Prompt,
        session: Session,
        cancel: threading.Event | None,
        started: float,
    ) -> Iterator[StreamItem]:
        """Prefill, then decode; the assistant prefill's tokens count for the repetition penalty.

        Counting the prefill is a deliberate middle way: the reference's chat() passes `inputs_embeds` and so
        penalises no prompt token, while its composer's text generate() penalises the whole prompt; the
        prefill is the start of the answer being continued, so it is penalised like the generated tokens.
        """
        mode = request.mode
        cache, cached = session.start(
            prompt, mode, lambda: self.model.new_cache(self.capabilities.context_length)
        )
        stats = DecodeStats()

        def finished(reason: FinishReason) -> Finished:
            now = time.perf_counter()
            first = stats.first_token_at
            return Finished(
                finish_reason=reason,
                prompt_tokens=prompt.num_tokens,
                generated_tokens=stats.generated,
                cached_tokens=cached,
                time_to_first_token_s=(first - started) if first is not None else 0.0,
                total_s=now - started,
            )

        logits = self._prefill(prompt, cached, cache, mode, cancel)
        if logits is None:
            yield finished("cancelled")
            return

        def step(token: int) -> torch.Tensor:
            session.answer.append(token)
            return self._forward(self.model.embed_tokens([token]), None, cache, mode)

        prefill_ids = self.tokenizer.encode(request.prefill, bos=False) if request.prefill else []
        tokens = decode_tokens(
            step,
            logits,
            request.params,
            stop_ids=self._stop_ids,
            seen_ids=prefill_ids,
            cancel=cancel,
            stats=stats,
        )
        reason = yield from stream_text(
            tokens, IncrementalDecoder(self.tokenizer), self._stop_ids, request.stop
        )
        yield finished(reason)

    def _prefill(
        self, prompt: Prompt, start: int, cache: KVCache, mode: str, cancel: threading.Event | None
    ) -> torch.Tensor | None:
        """Next-token logits after the prompt, computing its positions from `start` on; None if cancelled."""

        def features(segment: ImageSegment) -> torch.Tensor:
            if cancel is not None and cancel.is_set():
                raise Cancelled("The request was cancelled while its images were being encoded.")
            return self._image_features(segment)

        try:
            embeds, im_mask = self.model.embed_prompt(prompt, features, start)
        except Cancelled:
            return None
        if cancel is not None and cancel.is_set():
            return None
        return self._forward(embeds, im_mask, cache, mode)

    def _image_features(self, segment: ImageSegment) -> torch.Tensor:
        def encode() -> torch.Tensor:
            pixels = image_pixels(segment, self.read_image)
            with self._compute:
                return self.model.encode_image(pixels)

        return self.features.get(segment, encode)

    def _forward(
        self, embeds: torch.Tensor, im_mask: torch.Tensor | None, cache: KVCache, mode: str
    ) -> torch.Tensor:
        """Logits of the position after `embeds`, whose keys and values are appended to `cache`."""
        with self._compute:
            self.steps_run += 1
            return self.model.forward(embeds, im_mask, cache, mode, last_only=True)[-1]
