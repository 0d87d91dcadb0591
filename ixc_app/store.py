"""Conversations and media that survive restarts, kept per owner under the data dir.

Conversations live in a diskcache (SQLite index + files, safe across threads and processes) as JSON, keyed by
(owner, id): a lookup always names the owner, so one owner can never list or open another's conversation, and
a wrong owner looks exactly like a missing id. Media are the content-addressed files of `MediaStore`.

Beside the conversations the cache keeps a reference count per media key, updated in the same transaction as
each save, so deleting a conversation or making room for an upload never decodes the other conversations:
the cost of either does not grow with their number. Deleting a conversation deletes at once the media no
conversation (of any owner) and no other keeper refers to any more, so they are no longer stored or served.
The size bound counts everything under the data dir (raw uploads included): media that no one refers to go
first, oldest first, and an upload that would still not fit is refused with a sentence.

A store database SQLite cannot read is moved aside with a timestamp and an empty store starts in its place
(`recovered_from` says where the damaged copy went), so a damaged file never stops the app.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import diskcache

from ixc_app.chat.conversation import Conversation, rename
from ixc_app.chat.text import clean_text
from ixc_app.config import Settings
from ixc_app.i18n import tr
from ixc_app.media import MediaEntry, MediaStore, StorageFull

log = logging.getLogger(__name__)

_CONV = "conv"
_INDEX = "index"
_REF = "ref"
_REFS_BUILT = ("refs", 1)
_STREAMING = ("streaming",)
RECENT_MEDIA_GRACE_S = 3600.0
DATABASE_FILE = "cache.db"


class ConversationNotFound(LookupError):
    """The conversation does not exist for this user (deleted, or it was never theirs)."""

    def __init__(self) -> None:
        super().__init__(tr("This conversation was not found; it may have been deleted. Start a new one."))


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

    `max_bytes` bounds everything under `usage_root` (the data dir; by default the store's own folder) plus
    the media. Media saved in the last `grace_s` seconds are never evicted by the bound, so a file uploaded
    for a message that is not stored yet cannot vanish under it; deleting a conversation does not wait.
    """

    def __init__(
        self,
        root: Path,
        media: MediaStore,
        *,
        max_bytes: int,
        grace_s: float = RECENT_MEDIA_GRACE_S,
        usage_root: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.media = media
        self.max_bytes = max_bytes
        self.grace_s = grace_s
        self.usage_root = Path(usage_root) if usage_root else self.root
        self.recovered_from: Path | None = None
        self._cache = self._open()
        self._reference_sources: list[Callable[[], Iterable[str]]] = []
        self._deletion_listeners: list[Callable[[Path], None]] = []
        if self._cache.get(_REFS_BUILT) is None:
            self._rebuild_references()

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store in `settings.store_dir`, media in `settings.media_dir`, the whole data dir bounded by
        `max_data_bytes`."""
        return cls(
            settings.store_dir,
            MediaStore(settings.media_dir),
            max_bytes=settings.max_data_bytes,
            usage_root=settings.data_dir,
        )

    def _open(self) -> diskcache.Cache:
        """The cache, or an empty one when the database cannot be read (the damaged folder is kept)."""
        try:
            _check_database(self.root / DATABASE_FILE)
            return diskcache.Cache(str(self.root))
        except sqlite3.DatabaseError as exc:
            moved = self.root.with_name(f"{self.root.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(self.root, moved)
            self.recovered_from = moved
            log.error(
                "the conversation store at %s could not be read (%s); it was moved to %s and an empty store "
                "was started",
                self.root,
                exc,
                moved,
            )
            return diskcache.Cache(str(self.root))

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
            self._count(conv.media_keys - old_keys, +1)
            self._count(old_keys - conv.media_keys, -1)
            self._mark_streaming(conv.owner, conv.id, _is_streaming(conv))
        if conv.media_keys - old_keys:
            self.enforce_size_bound()

    def update(
        self, owner: str, conversation_id: str, change: Callable[[Conversation], Conversation]
    ) -> Conversation | None:
        """Read, change and save a conversation in one transaction, so that no other save (an answer that
        ends meanwhile) lands between the read and the write and is undone by it. None if not found."""
        with self._cache.transact():
            conv = self.get(owner, conversation_id)
            if conv is None:
                return None
            conv = change(conv)
            self.put(conv)
        return conv

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Remove the conversation and, at once, the media no one else refers to, so a deleted chat's
        pictures are no longer stored or served. False if not found."""
        with self._cache.transact():
            raw = self._cache.pop((_CONV, owner, conversation_id))
            index = self._cache.get((_INDEX, owner), {})
            if index.pop(conversation_id, None) is not None:
                self._cache.set((_INDEX, owner), index)
            keys = Conversation.from_dict(json.loads(raw)).media_keys if raw is not None else frozenset()
            self._count(keys, -1)
            self._mark_streaming(owner, conversation_id, False)
        if raw is None:
            return False
        self.delete_unreferenced(keys)
        return True

    def delete_unreferenced(self, keys: Iterable[str]) -> None:
        """Delete at once the media among `keys` that no conversation and no other keeper refers to: those
        of a deleted conversation, or those an upload stored before it was given up (stopped, or refused
        for a later file), so nothing of an unsent message stays stored."""
        others = self._other_references()
        for key in keys:
            if self.references(key) == 0 and key not in others:
                self._delete_media(key)

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        conv = self.get(owner, conversation_id)
        if conv is None:
            raise ConversationNotFound()
        conv = rename(conv, clean_text(title))
        self.put(conv)
        return conv

    def streaming(self) -> list[tuple[str, str]]:
        """(owner, id) of the conversations saved with an answer still being written."""
        return sorted(self._cache.get(_STREAMING, set()))

    def add_reference_source(self, source: Callable[[], Iterable[str]]) -> None:
        """Another keeper of media (the composer's articles and libraries): keys it returns are referenced."""
        self._reference_sources.append(source)

    def add_deletion_listener(self, listener: Callable[[Path], None]) -> None:
        """Called with a media file's path just before the file is deleted (a front end's copies of it go)."""
        self._deletion_listeners.append(listener)

    def references(self, key: str) -> int:
        """How many stored conversations (of any owner) refer to the media file `key`."""
        return int(self._cache.get((_REF, key), 0))

    def referenced_media(self) -> frozenset[str]:
        """Keys of every media file some conversation (of any owner) or reference source refers to."""
        keys = set(self._other_references())
        for entry in self.media.entries():
            if self.references(entry.key):
                keys.add(entry.key)
        return frozenset(keys)

    def size_bytes(self) -> int:
        """Bytes under the data dir: the media (kept count of) and every other file (walked)."""
        skip = {self.media.root.resolve(), self.media.private_root.resolve()}
        return self.media.total_bytes() + _tree_bytes(self.usage_root.resolve(), skip)

    def make_room(self, incoming_bytes: int, now: float | None = None) -> None:
        """Make sure `incoming_bytes` more fit under the bound, evicting what may go; `StorageFull` if not."""
        if self.size_bytes() + incoming_bytes <= self.max_bytes:
            return
        report = self.enforce_size_bound(now, target=self.max_bytes - incoming_bytes)
        if report.bytes_after + incoming_bytes > self.max_bytes:
            raise StorageFull(report.bytes_after, self.max_bytes)

    def enforce_size_bound(self, now: float | None = None, target: int | None = None) -> EvictionReport:
        """Delete unreferenced media, oldest first, until the data dir fits `target` (default `max_bytes`)
        or none may go."""
        now = time.time() if now is None else now
        target = self.max_bytes if target is None else target
        before = size = self.size_bytes()
        evicted: list[str] = []
        if size > target:
            others = self._other_references()
            for entry in sorted(self.media.entries(), key=lambda e: e.mtime):
                if size <= target:
                    break
                if not self._evictable(entry, others, now):
                    continue
                self._delete_media(entry.key)
                size -= entry.size
                evicted.append(entry.key)
            if size > target:
                log.warning(
                    "the data dir holds %d bytes and needs room for %d more under its bound of %d bytes, "
                    "but the rest is in use",
                    size,
                    self.max_bytes - target,
                    self.max_bytes,
                )
        if evicted:
            log.info("evicted %d unreferenced media files (%d -> %d bytes)", len(evicted), before, size)
        return EvictionReport(bytes_before=before, bytes_after=size, evicted=tuple(evicted))

    def _evictable(self, entry: MediaEntry, others: frozenset[str], now: float) -> bool:
        return (
            not self.references(entry.key) and entry.key not in others and now - entry.mtime >= self.grace_s
        )

    def _other_references(self) -> frozenset[str]:
        keys: set[str] = set()
        for source in self._reference_sources:
            keys.update(source())
        return frozenset(keys)

    def _delete_media(self, key: str) -> None:
        stored = self.media.get(key)
        if stored is not None:
            for listener in self._deletion_listeners:
                listener(stored.path)
        self.media.delete(key)

    def _count(self, keys: Iterable[str], delta: int) -> None:
        """Within a transaction: add `delta` to the reference count of each key."""
        for key in keys:
            count = self.references(key) + delta
            if count > 0:
                self._cache.set((_REF, key), count)
            else:
                self._cache.delete((_REF, key))

    def _mark_streaming(self, owner: str, conversation_id: str, streaming: bool) -> None:
        marked: set[tuple[str, str]] = self._cache.get(_STREAMING, set())
        if streaming != ((owner, conversation_id) in marked):
            marked ^= {(owner, conversation_id)}
            self._cache.set(_STREAMING, marked)

    def _rebuild_references(self) -> None:
        """Count the references of every stored conversation: once, for a store saved before counting."""
        counted = 0
        with self._cache.transact():
            for key in list(self._cache.iterkeys()):
                if isinstance(key, tuple) and key[0] == _REF:
                    self._cache.delete(key)
            for key in list(self._cache.iterkeys()):
                if isinstance(key, tuple) and key[0] == _CONV and (raw := self._cache.get(key)) is not None:
                    conv = Conversation.from_dict(json.loads(raw))
                    self._count(conv.media_keys, +1)
                    self._mark_streaming(conv.owner, conv.id, _is_streaming(conv))
                    counted += 1
            self._cache.set(_REFS_BUILT, True)
        if counted:
            log.info("counted the media references of %d stored conversations", counted)


def _is_streaming(conv: Conversation) -> bool:
    return bool(conv.messages) and conv.messages[-1].role == "assistant" and conv.messages[-1].finish is None


def _check_database(path: Path) -> None:
    """Raise `sqlite3.DatabaseError` when the file is not a readable SQLite database (absent is fine)."""
    if not path.exists():
        return
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (result,) = connection.execute("PRAGMA quick_check").fetchone()
    finally:
        connection.close()
    if result != "ok":
        raise sqlite3.DatabaseError(f"integrity check: {result}")


def _tree_bytes(root: Path, skip: set[Path]) -> int:
    """Bytes of the files under `root`, not descending into `skip`; files that vanish meanwhile count 0."""
    total = 0
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if Path(entry.path) not in skip:
                    total += _tree_bytes(Path(entry.path), skip)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total
