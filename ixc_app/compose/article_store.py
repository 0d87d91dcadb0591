"""Articles, image libraries and library captions that survive restarts, kept under the data dir.

The same pattern as the conversation store (`ixc_app.store`): a diskcache of JSON keyed by owner, so one
owner can never list or open another's article, and a wrong owner looks exactly like a missing id. Images are
the content-addressed files of the shared `MediaStore`; `referenced_media` tells the conversation store's
size bound which of them articles and libraries still use, so it never evicts them. Captions are keyed by
content (an image's sha256) and shared by every owner: the same picture is captioned once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import diskcache

from ixc_app.compose.article import Article, rename
from ixc_app.compose.strings import say
from ixc_app.media import MediaStore

_ARTICLE = "article"
_INDEX = "index"
_LIBRARY = "library"
_FOLDERS = "folders"
_CAPTION = "caption"
_SEEN = "seen"


class ArticleNotFound(LookupError):
    """The article does not exist for this user (deleted, or it was never theirs)."""

    def __init__(self) -> None:
        super().__init__(say("error.not_found"))


@dataclass(frozen=True)
class ArticleSummary:
    id: str
    title: str
    updated: float


class ArticleStore:
    def __init__(self, root: Path, media: MediaStore) -> None:
        self.root = Path(root)
        self.media = media
        self._cache = diskcache.Cache(str(self.root))

    def close(self) -> None:
        self._cache.close()

    # Articles

    def list(self, owner: str) -> list[ArticleSummary]:
        index = self._cache.get((_INDEX, owner), {})
        summaries = [ArticleSummary(aid, title, updated) for aid, (title, updated) in index.items()]
        return sorted(summaries, key=lambda s: s.updated, reverse=True)

    def get(self, owner: str, article_id: str) -> Article | None:
        raw = self._cache.get((_ARTICLE, owner, article_id))
        return None if raw is None else Article.from_dict(json.loads(raw))

    def require(self, owner: str, article_id: str) -> Article:
        article = self.get(owner, article_id) if article_id else None
        if article is None:
            raise ArticleNotFound()
        return article

    def put(self, article: Article) -> None:
        with self._cache.transact():
            self._cache.set(
                (_ARTICLE, article.owner, article.id), json.dumps(article.to_dict(), ensure_ascii=False)
            )
            index = self._cache.get((_INDEX, article.owner), {})
            index[article.id] = (article.title, article.updated)
            self._cache.set((_INDEX, article.owner), index)

    def delete(self, owner: str, article_id: str) -> bool:
        """Forget the article; its images stay while a library or another article uses them, and are
        otherwise left to the store's size bound."""
        with self._cache.transact():
            raw = self._cache.pop((_ARTICLE, owner, article_id))
            index = self._cache.get((_INDEX, owner), {})
            if index.pop(article_id, None) is not None:
                self._cache.set((_INDEX, owner), index)
        return raw is not None

    def rename(self, owner: str, article_id: str, title: str) -> Article:
        article = rename(self.require(owner, article_id), title)
        self.put(article)
        return article

    # Libraries

    def library(self, owner: str) -> tuple[str, ...]:
        """The owner's own library images (uploads), oldest first."""
        return tuple(self._cache.get((_LIBRARY, owner), ()))

    def add_to_library(self, owner: str, keys: Iterable[str]) -> tuple[str, ...]:
        with self._cache.transact():
            current = list(self._cache.get((_LIBRARY, owner), ()))
            current += [k for k in dict.fromkeys(keys) if k not in current]
            self._cache.set((_LIBRARY, owner), tuple(current))
        return tuple(current)

    def remove_from_library(self, owner: str, key: str) -> None:
        with self._cache.transact():
            current = tuple(k for k in self._cache.get((_LIBRARY, owner), ()) if k != key)
            self._cache.set((_LIBRARY, owner), current)

    def folder_images(self) -> tuple[str, ...]:
        """The images found in the configured library folders at the last scan (shared, read only)."""
        return tuple(self._cache.get(_FOLDERS, ()))

    def set_folder_images(self, keys: Iterable[str]) -> None:
        self._cache.set(_FOLDERS, tuple(dict.fromkeys(keys)))

    def seen_file(self, path: Path, size: int, mtime_ns: int) -> str | None:
        """The key a folder file had when it was last validated, if it has not changed since."""
        return self._cache.get((_SEEN, str(path), size, mtime_ns))

    def remember_file(self, path: Path, size: int, mtime_ns: int, key: str) -> None:
        self._cache.set((_SEEN, str(path), size, mtime_ns), key)

    # Captions, by content

    def caption(self, key: str) -> str | None:
        return self._cache.get((_CAPTION, key))

    def set_caption(self, key: str, caption: str) -> None:
        self._cache.set((_CAPTION, key), caption)

    def captions(self, keys: Iterable[str]) -> dict[str, str]:
        found = {key: self._cache.get((_CAPTION, key)) for key in keys}
        return {key: caption for key, caption in found.items() if caption is not None}

    # What the size bound must keep

    def referenced_media(self) -> frozenset[str]:
        """Keys of every stored file an article (with its undo history) or a library uses."""
        keys: set[str] = set(self.folder_images())
        for key in self._cache.iterkeys():
            if not isinstance(key, tuple):
                continue
            if key[0] == _ARTICLE:
                raw = self._cache.get(key)
                if raw is not None:
                    keys.update(Article.from_dict(json.loads(raw)).media_keys)
            elif key[0] == _LIBRARY:
                keys.update(self._cache.get(key, ()))
        return frozenset(keys)
