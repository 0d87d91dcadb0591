"""Conversations and media that survive restarts, kept per owner under the data dir.

Conversations live in a diskcache (SQLite index + files, safe across threads and processes) as JSON, keyed by
(owner, id): a lookup always names the owner, so one owner can never list or open another's conversation, and
a wrong owner looks exactly like a missing id. Media are the content-addressed files of `MediaStore`: deleting
a conversation deletes the media no other conversation refers to, and the data dir is kept under a size bound
by deleting, oldest first, media that no conversation refers to any more.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import diskcache

from ixc_app.chat.conversation import Conversation, rename
from ixc_app.config import Settings
from ixc_app.media import MediaEntry, MediaStore

log = logging.getLogger(__name__)

_CONV = "conv"
_INDEX = "index"
RECENT_MEDIA_GRACE_S = 3600.0


class ConversationNotFound(LookupError):
    """The conversation does not exist for this user (deleted, or it was never theirs)."""

    def __init__(self) -> None:
        super().__init__("This conversation was not found; it may have been deleted. Start a new one.")


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated: float


@dataclass(frozen=True)
class EvictionReport:
    """What one size check found and did: bytes before and after, and which media files went."""

    bytes_before: int
    bytes_after: int
    evicted: tuple[str, ...]


class Store:
    """Conversations by (owner, id), and the media they refer to.

    `max_bytes` bounds conversations plus media. Media saved in the last `grace_s` seconds are never evicted,
    neither by the bound nor by deleting a conversation, so a file uploaded for a message that is not stored
    yet cannot vanish under it.
    """

    def __init__(
        self, root: Path, media: MediaStore, *, max_bytes: int, grace_s: float = RECENT_MEDIA_GRACE_S
    ) -> None:
        self.root = Path(root)
        self.media = media
        self.max_bytes = max_bytes
        self.grace_s = grace_s
        self._cache = diskcache.Cache(str(self.root))
        self._reference_sources: list[Callable[[], Iterable[str]]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store in `settings.store_dir`, media in `settings.media_dir`, bounded by `max_data_bytes`."""
        return cls(settings.store_dir, MediaStore(settings.media_dir), max_bytes=settings.max_data_bytes)

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list(self, owner: str) -> list[ConversationSummary]:
        """The owner's conversations, most recently updated first."""
        index = self._cache.get((_INDEX, owner), {})
        summaries = [ConversationSummary(cid, title, updated) for cid, (title, updated) in index.items()]
        return sorted(summaries, key=lambda s: s.updated, reverse=True)

    def get(self, owner: str, conversation_id: str) -> Conversation | None:
        """The conversation, or None when this owner has none with that id."""
        raw = self._cache.get((_CONV, owner, conversation_id))
        return None if raw is None else Conversation.from_dict(json.loads(raw))

    def put(self, conv: Conversation) -> None:
        """Save (create or replace) a conversation under its owner; new media may trigger the size bound."""
        key = (_CONV, conv.owner, conv.id)
        with self._cache.transact():
            old = self._cache.get(key)
            self._cache.set(key, json.dumps(conv.to_dict(), ensure_ascii=False))
            index = self._cache.get((_INDEX, conv.owner), {})
            index[conv.id] = (conv.title, conv.updated)
            self._cache.set((_INDEX, conv.owner), index)
        old_keys = Conversation.from_dict(json.loads(old)).media_keys if old else frozenset()
        if conv.media_keys - old_keys:
            self.enforce_size_bound()

    def delete(self, owner: str, conversation_id: str, now: float | None = None) -> bool:
        """Remove the conversation and the media only it referred to, so a deleted chat's pictures are no
        longer stored or served. False if not found."""
        with self._cache.transact():
            raw = self._cache.pop((_CONV, owner, conversation_id))
            index = self._cache.get((_INDEX, owner), {})
            if index.pop(conversation_id, None) is not None:
                self._cache.set((_INDEX, owner), index)
        if raw is None:
            return False
        keys = Conversation.from_dict(json.loads(raw)).media_keys
        referenced = self.referenced_media()
        now = time.time() if now is None else now
        for entry in self.media.entries():
            if entry.key in keys and self._evictable(entry, referenced, now):
                self.media.delete(entry.key)
        return True

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        conv = self.get(owner, conversation_id)
        if conv is None:
            raise ConversationNotFound()
        conv = rename(conv, title)
        self.put(conv)
        return conv

    def add_reference_source(self, source: Callable[[], Iterable[str]]) -> None:
        """Another keeper of media (the composer's articles and libraries): keys it returns are referenced."""
        self._reference_sources.append(source)

    def referenced_media(self) -> frozenset[str]:
        """Keys of every media file some conversation (of any owner) or reference source refers to."""
        keys: set[str] = set()
        for source in self._reference_sources:
            keys.update(source())
        for key in self._cache.iterkeys():
            if isinstance(key, tuple) and key[0] == _CONV:
                raw = self._cache.get(key)
                if raw is not None:
                    keys.update(Conversation.from_dict(json.loads(raw)).media_keys)
        return frozenset(keys)

    def size_bytes(self) -> int:
        return self._cache.volume() + self.media.total_bytes()

    def enforce_size_bound(self, now: float | None = None) -> EvictionReport:
        """Delete unreferenced media, oldest first, until the store fits `max_bytes` or none may go."""
        now = time.time() if now is None else now
        before = size = self.size_bytes()
        evicted: list[str] = []
        if size > self.max_bytes:
            referenced = self.referenced_media()
            for entry in sorted(self.media.entries(), key=lambda e: e.mtime):
                if size <= self.max_bytes:
                    break
                if not self._evictable(entry, referenced, now):
                    continue
                self.media.delete(entry.key)
                size -= entry.size
                evicted.append(entry.key)
            if size > self.max_bytes:
                log.warning(
                    "the data dir holds %d bytes, over its bound of %d, but the rest is in use",
                    size,
                    self.max_bytes,
                )
        if evicted:
            log.info("evicted %d unreferenced media files (%d -> %d bytes)", len(evicted), before, size)
        return EvictionReport(bytes_before=before, bytes_after=size, evicted=tuple(evicted))

    def _evictable(self, entry: MediaEntry, referenced: frozenset[str], now: float) -> bool:
        return entry.key not in referenced and now - entry.mtime >= self.grace_s
