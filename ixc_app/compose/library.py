"""The image library: the user's uploads plus the configured folders, captioned once and searchable by text.

Folder images are validated exactly like uploads (content sniffed, size and pixel limits) and copied into the
content-addressed media store, so the browser is only ever served files from there; the folders themselves
are only read. A file that is not a valid image is skipped with its reason in the log. A folder file that
has not changed since the last scan (same path, size and modification time) is not read again.

Captions come from the model through `index` (cached by content hash in the article store, so a second run
calls the engine zero times) and are searched with BM25 (`bm25s`) over `jieba`'s search-mode segmentation,
which splits Chinese into words and leaves English words whole, so one index serves both languages.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import jieba
import numpy as np

from ixc_app.chat.ingest import media_limits
from ixc_app.compose.article_store import ArticleStore
from ixc_app.config import Limits
from ixc_app.media import MediaRejected, MediaStore

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)

CANDIDATES = 4
INDEX_CACHE_SIZE = 8

Describe = Callable[[str], str]
"""Caption one stored image (by key) with the model."""


STOPWORDS = frozenset(
    [
        "的",
        "了",
        "在",
        "是",
        "和",
        "与",
        "及",
        "有",
        "个",
        "着",
        "上",
        "中",
        "一",
        "the",
        "a",
        "an",
        "of",
        "on",
        "in",
        "at",
        "with",
        "and",
        "to",
        "is",
        "are",
        "by",
    ]
)


def tokens(text: str) -> list[str]:
    """Search terms of a caption or query: jieba's search-mode words, lower-cased, without punctuation or
    stop words, plus the single Chinese characters of longer words, so that 塔 finds 雷峰塔."""
    terms: list[str] = []
    for word in jieba.lcut_for_search(text.lower()):
        if not any(ch.isalnum() for ch in word) or word in STOPWORDS:
            continue
        terms.append(word)
        if len(word) > 1:
            terms += [ch for ch in word if _is_cjk(ch) and ch not in STOPWORDS]
    return terms


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


class SearchIndex:
    """BM25 over a fixed list of captioned images, each given as its caption's `tokens`."""

    def __init__(self, keys: Sequence[str], terms: Sequence[Sequence[str]]) -> None:
        self.keys = tuple(keys)
        self._position = {key: i for i, key in enumerate(self.keys)}
        self._bm25 = bm25s.BM25()
        if self.keys:
            self._bm25.index([list(t) for t in terms], show_progress=False)

    @classmethod
    def of_captions(cls, keys: Sequence[str], captions: Sequence[str]) -> SearchIndex:
        return cls(keys, [tokens(c) for c in captions])

    def search(self, query: str, exclude: Sequence[str] = (), k: int = CANDIDATES) -> list[str]:
        """The best-matching keys (a positive score only), best first, none of `exclude`."""
        terms = tokens(query)
        if not self.keys or not terms or k <= 0:
            return []
        mask = np.ones(len(self.keys), dtype=np.float32)
        for key in exclude:
            if key in self._position:
                mask[self._position[key]] = 0.0
        found, scores = self._bm25.retrieve(
            [terms], k=min(k, len(self.keys)), show_progress=False, weight_mask=mask, n_threads=0
        )
        return [self.keys[int(i)] for i, s in zip(found[0], scores[0], strict=True) if s > 0]


def pick_unused(
    ranked: Sequence[str], pool: Sequence[str], exclude: Sequence[str], k: int
) -> tuple[str, ...]:
    """Up to `k` candidates: the ranked ones first, then the rest of `pool` in its order, none in `exclude`.

    Filling up from the pool keeps the pipeline going when no caption matches (a library whose captions are
    in another language, or a model whose captions are noise)."""
    seen = set(exclude)
    picked: list[str] = []
    for key in (*ranked, *pool):
        if len(picked) >= k:
            break
        if key not in seen:
            seen.add(key)
            picked.append(key)
    return tuple(picked)


@dataclass(frozen=True)
class ScanReport:
    images: int
    skipped: tuple[tuple[str, str], ...]
    """(file, reason) of every file that was not taken."""


@dataclass(frozen=True)
class IndexProgress:
    done: int
    total: int
    captioned_now: int
    """Engine calls made by this run so far."""


class Library:
    def __init__(
        self, store: ArticleStore, media: MediaStore, folders: Sequence[Path], limits: Limits
    ) -> None:
        self.store = store
        self.media = media
        self.folders = tuple(Path(f) for f in folders)
        self.limits = limits
        self._scan_lock = threading.Lock()
        self._lock = threading.Lock()
        self._captions: dict[str, str] = {}
        self._terms: dict[str, tuple[str, ...]] = {}
        """Each caption's search terms: segmenting is most of an index build, so it is done once per image."""
        self._indexes: OrderedDict[tuple[str, ...], SearchIndex] = OrderedDict()

    # Contents

    def scan_folders(self) -> ScanReport:
        """Validate and store every image under the configured folders (recursively)."""
        with self._scan_lock:
            keys: list[str] = []
            skipped: list[tuple[str, str]] = []
            for folder in self.folders:
                if not folder.is_dir():
                    log.warning("library folder %s is not a readable folder; skipped", folder)
                    skipped.append((str(folder), "not a readable folder"))
                    continue
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    key, reason = self._take(path)
                    if key:
                        keys.append(key)
                    else:
                        log.warning("library file %s skipped: %s", path, reason)
                        skipped.append((str(path), reason))
            self.store.set_folder_images(keys)
            self._changed()
            return ScanReport(images=len(set(keys)), skipped=tuple(skipped))

    def _take(self, path: Path) -> tuple[str | None, str]:
        try:
            stat = path.stat()
            known = self.store.seen_file(path, stat.st_size, stat.st_mtime_ns)
            if known and self.media.get(known) is not None:
                return known, ""
            stored = self.media.add(path, path.name, media_limits(self.limits))
        except MediaRejected as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"it cannot be read ({exc.strerror or exc})"
        if stored.kind != "image":
            return None, "it is a video, and the library holds images only"
        self.store.remember_file(path, stat.st_size, stat.st_mtime_ns, stored.key)
        return stored.key, ""

    def add(self, owner: str, keys: Sequence[str]) -> None:
        """Put uploaded images into the owner's library."""
        self.store.add_to_library(owner, keys)
        self._changed()

    def remove(self, owner: str, key: str) -> None:
        self.store.remove_from_library(owner, key)
        self._changed()

    def pool(self, owner: str) -> tuple[str, ...]:
        """Every image the owner can illustrate with: their uploads, then the folders' images."""
        return tuple(dict.fromkeys((*self.store.library(owner), *self.store.folder_images())))

    def captions(self, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            missing = [k for k in keys if k not in self._captions]
        found = self.store.captions(missing)
        with self._lock:
            self._captions.update(found)
            return {k: self._captions[k] for k in keys if k in self._captions}

    # Captioning

    def index(self, owner: str, describe: Describe) -> Iterator[IndexProgress]:
        """Caption every image of the owner's pool that has no caption yet, one engine call each.

        Yields after each image; closing the iterator stops between images (the captions made so far stay).
        """
        pool = self.pool(owner)
        have = self.captions(pool)
        todo = [k for k in pool if k not in have]
        done, made = len(pool) - len(todo), 0
        yield IndexProgress(done, len(pool), made)
        for key in todo:
            caption = " ".join(describe(key).split())
            if caption:
                self.store.set_caption(key, caption)
                with self._lock:
                    self._captions[key] = caption
                self._changed()
            done, made = done + 1, made + 1
            yield IndexProgress(done, len(pool), made)

    # Search

    def search(
        self, owner: str, query: str, exclude: Sequence[str] = (), k: int = CANDIDATES
    ) -> tuple[str, ...]:
        """Up to `k` images for a caption: the best text matches, then other unused images of the pool."""
        pool = self.pool(owner)
        ranked = self.search_index(pool).search(query, exclude, k)
        return pick_unused(ranked, pool, exclude, k)

    def search_index(self, pool: tuple[str, ...]) -> SearchIndex:
        """The index of the captioned images of `pool`, built once per pool and kept while nothing changes."""
        with self._lock:
            index = self._indexes.get(pool)
            if index is not None:
                self._indexes.move_to_end(pool)
                return index
        captions = self.captions(pool)
        keys = [k for k in pool if k in captions]
        for key in keys:
            if key not in self._terms:
                self._terms[key] = tuple(tokens(captions[key]))
        index = SearchIndex(keys, [self._terms[k] for k in keys])
        with self._lock:
            self._indexes[pool] = index
            while len(self._indexes) > INDEX_CACHE_SIZE:
                self._indexes.popitem(last=False)
        return index

    def _changed(self) -> None:
        with self._lock:
            self._indexes.clear()
