"""The one protocol every engine implements, and the request and result shapes it speaks.

Chat, the composer and edits all go through `Engine.stream`, so an engine that implements it gets every
feature. What differs between engines (task LoRA modes, assistant prefill, beam search, stop strings, prefix
caching, how many requests may run at once) is declared in `EngineCapabilities`, never sniffed; a caller that
needs a capability an engine lacks refuses or emulates it in one place. This module imports no torch and no
gradio: the UI may import it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from ixc_app.ixc.prompt import Mode, Turn
from ixc_app.ixc.tokenizer import Tokenizer

if TYPE_CHECKING:
    from PIL import Image

ImageReader = Callable[[str], "Image.Image"]
"""Reads a stored, validated image file as RGB, the way uploads are read (`ixc_app.media.load_rgb`); an
engine that needs pixels receives one in its constructor instead of importing the app's media code."""

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings. Defaults are the reference `chat()` (HF `generate` adds top_k=50 when unset)."""

    max_new_tokens: int = 1024
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 0.8
    top_k: int = 50
    repetition_penalty: float = 1.005
    seed: int | None = None
    num_beams: int = 1
    length_penalty: float = 1.0


@dataclass(frozen=True)
class Request:
    """A whole conversation to answer: history turns and the current user turn, last.

    `meta_instruction` None means no system turn. `prefill` starts the assistant answer (the composer uses
    it; needs `supports_prefill`); the streamed text continues after it. The answer ends before the first of
    the `stop` strings it would contain (the stop string itself is not part of the answer), with finish
    reason "stop". A request is stateless: an engine with `prefix_cache` reuses what any earlier request
    computed for the same prompt prefix, so callers send the whole conversation every time. A caller that
    leaves its oldest turns out sets `first_image` to the number the first image of `turns` has in the whole
    conversation, so the prompt keeps each image's number (`ixc.template.image_numbers`).
    """

    turns: tuple[Turn, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    mode: Mode = "base"
    meta_instruction: str | None = None
    prefill: str = ""
    stop: tuple[str, ...] = ()
    hd_num_single: int = 24
    hd_num_multi: int = 6
    first_image: int = 1


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text, in order; never a broken UTF-8 character."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last item of every stream."""

    finish_reason: FinishReason
    prompt_tokens: int
    generated_tokens: int
    cached_tokens: int = 0
    time_to_first_token_s: float = 0.0
    total_s: float = 0.0


StreamItem = Delta | Finished


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do, declared once so callers never guess.

    - `modes`: the inference modes it serves ("base", and "write"/"web" where the task LoRAs are there).
    - `supports_prefill`: `Request.prefill` is honoured (an OpenAI-style server has no assistant prefill).
    - `supports_beam_search`: `GenerationParams.num_beams` > 1 is honoured (the native engine sends such an
      answer in one piece when the search ends: the best beam is not known before).
    - `supports_stop`: `Request.stop` strings end the answer.
    - `prefix_cache`: the engine reuses the work of prompt prefixes it has seen, by content, for any caller.
    - `max_concurrency`: requests it answers at once (the native engine's batch limit); callers size their
      queues by it.
    - `context_length`: prompt plus answer tokens it holds.
    - `is_demo_model`: it runs the tiny random-weight checkpoint, whose answers are noise.
    """

    name: str
    modes: frozenset[str] = frozenset({"base"})
    supports_prefill: bool = True
    supports_beam_search: bool = False
    supports_stop: bool = True
    prefix_cache: bool = False
    max_concurrency: int = 1
    context_length: int = 16384
    is_demo_model: bool = False


class EngineError(Exception):
    """Base of the errors an engine raises; the message is one sentence a user can act on."""


class ContextTooLong(EngineError):
    pass


class BadRequest(EngineError):
    pass


class EngineUnavailable(EngineError):
    pass


class RetryableError(EngineError):
    """A temporary failure: the same request may well succeed if sent again shortly."""


class Overloaded(RetryableError):
    """The engine (or the server behind it) has no room for the request now."""


class TimedOut(RetryableError):
    """The engine did not answer within its time limit."""


class Cancelled(EngineError):
    """Work stopped because the caller cancelled it; a stream reports this as finish_reason "cancelled"."""


class Engine(Protocol):
    capabilities: EngineCapabilities
    tokenizer: Tokenizer
    """The model's tokenizer, for token budgets and counts before a request is sent."""

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        """Yield `Delta`s then exactly one `Finished`.

        Computation stops within one decoding step when `cancel` is set or when the consumer closes the
        generator; the stream then ends with `Finished(finish_reason="cancelled")` if it is still consumed.
        """
        ...

    def close(self) -> None: ...
