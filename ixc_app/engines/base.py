"""The one protocol every engine implements, and the request and result shapes it speaks.

Chat, the composer and edits all go through `Engine.stream`, so an engine that implements it gets every
feature. What differs between engines (task LoRA modes, server-side sessions, how many requests may run at
once) is declared in `EngineCapabilities`, never sniffed. This module imports no torch and no gradio: the UI
may import it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ixc_app.ixc.prompt import Mode, Turn

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


@dataclass(frozen=True)
class Request:
    """A whole conversation to answer: history turns and the current user turn, last.

    `meta_instruction` None means no system turn. `prefill` starts the assistant answer (the composer uses
    it); the streamed text continues after it. `session_id` lets an engine with server-side sessions reuse
    what it kept from the previous turn of the same conversation.
    """

    turns: tuple[Turn, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    mode: Mode = "base"
    meta_instruction: str | None = None
    prefill: str = ""
    session_id: str | None = None
    hd_num_single: int = 24
    hd_num_multi: int = 6


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
    name: str
    modes: frozenset[str] = frozenset({"base"})
    server_side_sessions: bool = False
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


class Cancelled(EngineError):
    """Work stopped because the caller cancelled it; a stream reports this as finish_reason "cancelled"."""


class Engine(Protocol):
    capabilities: EngineCapabilities

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        """Yield `Delta`s then exactly one `Finished`.

        Computation stops within one decoding step when `cancel` is set or when the consumer closes the
        generator; the stream then ends with `Finished(finish_reason="cancelled")` if it is still consumed.
        """
        ...

    def open_session(self) -> str: ...

    def close_session(self, session_id: str) -> None: ...

    def close(self) -> None: ...
