"""A request as the scheduler runs it, and the events the scheduler sends back to the stream that asked.

The stream that submits a job prepares everything that needs no model (the prompt, its content keys, the
pixels of images not cached yet) on its own thread; the scheduler thread then owns the job's caches and rows.
The stream reads `events` and never touches the scheduler's state; it ends a job by setting `closed`.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

from torch import Tensor

from ixc_app.engines.base import FinishReason, GenerationParams
from ixc_app.engines.native.attention import KVCache
from ixc_app.engines.native.beam import BeamSearch
from ixc_app.engines.native.generate import Row
from ixc_app.ixc.prompt import Prompt


@dataclass(frozen=True)
class Started:
    """The job's prefill began; this many prompt positions came from the prefix cache."""

    cached_tokens: int


@dataclass(frozen=True)
class Tokens:
    """Chosen tokens, in order (a stop token included, last)."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class Done:
    reason: FinishReason


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = Started | Tokens | Done | Failed


@dataclass(eq=False)
class Job:
    prompt: Prompt
    keys: list[Hashable]
    """The prompt's content keys (`prefix_cache.position_keys`)."""
    mode: str
    params: GenerationParams
    prefill_ids: tuple[int, ...]
    """The assistant prefill's ids, which the repetition penalty sees from the start."""
    pixels: dict[tuple[str, int], Tensor]
    """Normalised pixels of the images that were not in the feature cache when the job was made."""
    cancel: threading.Event | None = None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    """The context of the stream that made the job (its request's): the scheduler runs its prefill in it."""
    events: queue.SimpleQueue[Event] = field(default_factory=queue.SimpleQueue)
    closed: bool = False
    """Set by the stream when it no longer reads the job (closed, or a stop string ended the answer)."""

    generation: int = 0
    caches: list[KVCache] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    features: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    fed: list[int] = field(default_factory=list)
    """Answer tokens whose keys and values are in the cache after the prompt's (one sequence only)."""
    pending: list[int] = field(default_factory=list)
    """The token each row feeds at the next decode step."""
    beam: BeamSearch | None = None
    reserved: int = 0
    started: bool = False
    decoding: bool = False

    @property
    def width(self) -> int:
        """Sequences it runs at once: one, or its beams."""
        return self.params.num_beams

    @property
    def capacity(self) -> int:
        """Positions each of its caches needs: the prompt and the longest answer."""
        return self.prompt.num_tokens + self.params.max_new_tokens

    @property
    def stopped(self) -> bool:
        return self.closed or (self.cancel is not None and self.cancel.is_set())
