"""What the native engine keeps between turns: each conversation's KV cache, and vision features by image.

A follow-up turn's prompt repeats the whole history, so most of it is already in the conversation's cache: the
cache is rolled back to the longest prefix it shares with the new prompt (`prompt_prefix_len`, plus the
answer tokens that were generated into it) and only the rest is prefilled. The same rule serves regenerate
(the new prompt ends where the old answer started) and edits (it differs from the edited turn on). The cache
is reused only when the inference mode matches, since the write/web task LoRAs change every position.

Both caches are bounded in bytes and drop their least recently used entries; an evicted conversation simply
starts from an empty cache and prefills its whole transcript. Sessions in use are never evicted: the budget
bounds what is kept between turns, so the peak is the budget plus the caches of the requests running. Idle
sessions are also bounded in number, since each keeps its whole prompt, which its byte count leaves out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ixc_app.engines.native.model import KVCache
from ixc_app.ixc.prompt import ImageSegment, Prompt, TextSegment
from ixc_app.ixc.template import prompt_prefix_len


def reusable_prefix(prompt: Prompt, answer: list[int], new: Prompt) -> int:
    """How many leading positions of `prompt` followed by `answer` equal those of `new`.

    The next turn's history holds the answer as text, re-tokenized inside a longer segment: the generated ids
    usually, but not always, come back the same, so they are compared id by id.
    """
    shared = prompt_prefix_len(prompt, new)
    following = new.suffix(shared)
    if shared < prompt.num_tokens or not following or not isinstance(following[0][0], TextSegment):
        return shared
    segment, offset = following[0]
    for generated, expected in zip(answer, segment.token_ids[offset:], strict=False):
        if generated != expected:
            break
        shared += 1
    return shared


@dataclass
class Session:
    """A conversation's KV cache and what it holds.

    The cache always holds the first `cache.length` positions of `prompt` followed by `answer` (the generated
    tokens that were fed back into the model), even after an error or a cancellation mid-answer.
    """

    id: str | None
    cache: KVCache | None = None
    prompt: Prompt | None = None
    mode: str = "base"
    answer: list[int] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return self.cache.nbytes if self.cache is not None else 0

    def reusable(self, prompt: Prompt, mode: str) -> int:
        """Cached positions `prompt` can keep; its last position is always recomputed, for its logits."""
        if self.cache is None or self.prompt is None or mode != self.mode:
            return 0
        shared = reusable_prefix(self.prompt, self.answer, prompt)
        return min(shared, self.cache.length, prompt.num_tokens - 1)

    def start(self, prompt: Prompt, mode: str, new_cache: Callable[[], KVCache]) -> tuple[KVCache, int]:
        """Roll the cache back to what `prompt` shares with it, to be filled with `prompt`.

        Returns the cache and how many positions it kept.
        """
        reused = self.reusable(prompt, mode)
        cache = self.cache if self.cache is not None else new_cache()
        cache.truncate(reused)
        self.cache, self.prompt, self.mode, self.answer = cache, prompt, mode, []
        return cache, reused

    def forget(self) -> None:
        self.cache, self.prompt, self.answer = None, None, []


DEFAULT_MAX_IDLE_SESSIONS = 256
"""Idle conversations kept: far more than a single-GPU app serves at once, yet a bounded number of prompts."""


class SessionStore:
    """Sessions by id; idle ones are bounded by `budget_bytes` of cache and `max_idle` in number (least
    recently used go first).

    The store holds only sessions that are answering or keep a cache: an evicted or empty one is
    dropped, and an unknown id (a conversation from before a restart, or one dropped) starts a new session
    under that id, so callers never need to know whether the engine still holds it. A request on a session
    that is already answering another one gets a throwaway session: correct, only not cached.
    """

    def __init__(self, budget_bytes: int, max_idle: int = DEFAULT_MAX_IDLE_SESSIONS) -> None:
        self.budget_bytes = budget_bytes
        self.max_idle = max_idle
        self._sessions: dict[str, Session] = {}
        self._busy: set[str] = set()
        self._idle: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the caches of idle sessions."""
        with self._lock:
            return sum(s.nbytes for s in self._idle.values())

    @property
    def idle_ids(self) -> list[str]:
        """Sessions holding a cache between turns, least recently used first (the next to be evicted)."""
        with self._lock:
            return list(self._idle)

    def __len__(self) -> int:
        """Sessions held, answering or idle."""
        with self._lock:
            return len(self._sessions)

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._idle.clear()

    @contextmanager
    def use(self, session_id: str | None) -> Iterator[Session]:
        """The session to answer one request with, given back (and the budget enforced) when it is done."""
        with self._lock:
            session = self._checkout(session_id)
        try:
            yield session
        finally:
            with self._lock:
                self._checkin(session)

    def _checkout(self, session_id: str | None) -> Session:
        if session_id is None or session_id in self._busy:
            return Session(None)
        session = self._sessions.setdefault(session_id, Session(session_id))
        self._idle.pop(session_id, None)
        self._busy.add(session_id)
        return session

    def _checkin(self, session: Session) -> None:
        if session.id is None:
            return
        self._busy.discard(session.id)
        if self._sessions.get(session.id) is not session:
            session.forget()
            return
        if session.cache is None:
            del self._sessions[session.id]
            return
        self._idle[session.id] = session
        used = sum(s.nbytes for s in self._idle.values())
        while self._idle and (used > self.budget_bytes or len(self._idle) > self.max_idle):
            oldest_id, oldest = self._idle.popitem(last=False)
            used -= oldest.nbytes
            del self._sessions[oldest_id]
            oldest.forget()


class FeatureCache:
    """Vision features by (image content key, crop budget), least recently used dropped beyond `budget_bytes`.

    A video strip is used as it is, whatever its crop budget, so its features are kept once.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._used

    def get(self, segment: ImageSegment, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = (segment.image.key, 0 if segment.image.is_video else segment.hd_num)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        features = compute()
        size = features.numel() * features.element_size()
        with self._lock:
            if size <= self.budget_bytes and key not in self._items:
                self._items[key] = features
                self._used += size
                while self._used > self.budget_bytes:
                    _, old = self._items.popitem(last=False)
                    self._used -= old.numel() * old.element_size()
        return features

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used = 0
