"""The content-addressed media store: accepted uploads and the images derived from them, by sha256.

Accepted files are stored under their sha256, so the same photo uploaded twice is stored once, and an image's
key doubles as the cache key of its vision features. A second upload of stored content checks the stored
copy against its key and replaces a damaged one. An index file that cannot be read is rebuilt from its media
file (or set aside), never allowed to break the other uploads. The store keeps count of its files and bytes
as it changes them, so the size bound never has to list the folder. A disk that is full refuses the upload
with a sentence and leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ixc_app.media.images import load_rgb, to_rgb
from ixc_app.media.probe import VideoInfo
from ixc_app.media.refusals import MediaKind, MediaNotFound, MediaRejected, StorageFull
from ixc_app.media.validate import MediaLimits, inspect_media, precheck

log = logging.getLogger(__name__)

VIDEO_STRIP = "strip"
"""`save_derived` name of a video's labelled frame strip: what the model sees of that video."""

_COPY_CHUNK = 1 << 20
_STALE_INCOMING_S = 3600.0
_REBUILD_LIMITS = MediaLimits(
    max_image_bytes=1 << 40, max_video_bytes=1 << 40, max_pixels=1 << 40, max_video_seconds=1e9
)
"""Rebuilding a lost index re-reads a file that was validated when it was stored: only its kind matters."""


@contextlib.contextmanager
def _disk_full_refused(*leftovers: Path) -> Iterator[None]:
    """Turn a full disk into `StorageFull`, removing the files the failed write may have left."""
    try:
        yield
    except OSError as exc:
        for path in leftovers:
            path.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("the disk is full: %s", exc)
            raise StorageFull() from exc
        raise


@dataclass(frozen=True)
class StoredMedia:
    """An accepted file in the store. `derived` maps names (e.g. `VIDEO_STRIP`) to keys of images made from
    it; a derived image names its source in `derived_from`."""

    key: str
    kind: MediaKind
    path: Path
    name: str
    mime: str
    size: int
    width: int
    height: int
    video: VideoInfo | None = None
    derived_from: str | None = None
    derived: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaEntry:
    """One stored file, for size accounting and eviction (`Store.enforce_size_bound`)."""

    key: str
    size: int
    mtime: float


class MediaStore:
    """Accepted media: one `<key><ext>` file per item under `root`, and its `<key>.json` index under
    `private_root/index` (both sharded by the key's first two hex digits). `root` is served to browsers and
    holds nothing else: the indexes (original file names) and the uploads still being validated
    (`private_root/incoming`) stay in `private_root`, by default the sibling folder `<root>-private`. Writes
    go to a temporary file first and are renamed into place, so readers never see half a file and two
    uploads of the same content just write the same bytes twice."""

    def __init__(self, root: Path, private_root: Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        private = Path(private_root) if private_root else self.root.with_name(self.root.name + "-private")
        self.private_root = private
        self._index_root = private / "index"
        self._index_root.mkdir(parents=True, exist_ok=True)
        self._incoming = private / "incoming"
        self._incoming.mkdir(exist_ok=True)
        self._sweep_incoming()
        self._lock = threading.Lock()
        self._items: dict[str, StoredMedia] = {}
        self._ledger: dict[str, MediaEntry] | None = None

    def add(
        self, src: Path, original_name: str, limits: MediaLimits, *, added: list[str] | None = None
    ) -> StoredMedia:
        """Validate an upload and store it, or raise `MediaRejected`. Identical content is stored once (the
        first upload's name is kept) and its clock restarted, so eviction treats it as just uploaded; a
        stored copy that no longer matches its key is replaced by the new upload. The key of content stored
        anew is appended to `added`, so a caller that gives up later can take back what it stored."""
        name = Path(original_name).name or "upload"
        precheck(Path(src), name, limits)  # refuse what is plainly wrong before copying it
        staged, key = self._stage(Path(src))
        try:
            info = inspect_media(staged, name, limits)
            existing = self.get(key)
            if existing is not None:
                if not _matches(existing.path, key):
                    log.warning("the stored copy of %s was damaged; the new upload replaces it", key[:12])
                    os.replace(staged, existing.path)
                os.utime(existing.path)
                self._account(existing)
                return existing
            stored = StoredMedia(
                key=key,
                kind=info.kind,
                path=self._data_path(key, info.ext),
                name=name,
                mime=info.mime,
                size=staged.stat().st_size,
                width=info.width,
                height=info.height,
                video=info.video,
            )
            stored.path.parent.mkdir(exist_ok=True)
            os.replace(staged, stored.path)
            with _disk_full_refused(stored.path):
                self._write_index(stored)
            if added is not None:
                added.append(key)
            return stored
        finally:
            staged.unlink(missing_ok=True)

    def get(self, key: str) -> StoredMedia | None:
        if key in self._items:
            return self._items[key]
        index = self._index_path(key)
        try:
            stored = self._from_json(key, json.loads(index.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("media index %s is unreadable (%s); rebuilding it from the file", key[:12], exc)
            return self._rebuild(key)
        if not stored.path.is_file():
            return None
        self._items[key] = stored
        return stored

    def path(self, key: str) -> Path:
        """Where the file of `key` is; `MediaNotFound` if it is not stored."""
        stored = self.get(key)
        if stored is None:
            raise MediaNotFound(key)
        return stored.path

    def load_image(self, ref: str | Path) -> Image.Image:
        """A stored image (by key, or by its path) as RGB with orientation and transparency handled."""
        if isinstance(ref, Path):
            return load_rgb(ref)
        stored = self.get(ref)
        if stored is None:
            raise MediaNotFound(ref)
        if stored.kind != "image":
            raise ValueError(f"{ref} is a video; load its '{VIDEO_STRIP}' derived image instead")
        return load_rgb(stored.path)

    def save_derived(
        self, key: str, name: str, image: Image.Image, *, added: list[str] | None = None
    ) -> StoredMedia:
        """Store an image made from item `key` (losslessly, as PNG) under its own content key, and record it
        on `key` under `name`; its key is appended to `added` when the image was not stored before."""
        source = self.get(key)
        if source is None:
            raise MediaNotFound(key)
        rgb = to_rgb(image)
        fd, tmp = tempfile.mkstemp(dir=self._incoming, suffix=".png")
        try:
            with _disk_full_refused(Path(tmp)), os.fdopen(fd, "wb") as f:
                rgb.save(f, format="PNG", compress_level=1)
            derived_key = _sha256(Path(tmp))
            stored = self.get(derived_key)
            if stored is None:
                stored = StoredMedia(
                    key=derived_key,
                    kind="image",
                    path=self._data_path(derived_key, ".png"),
                    name=name,
                    mime="image/png",
                    size=Path(tmp).stat().st_size,
                    width=rgb.width,
                    height=rgb.height,
                    derived_from=key,
                )
                stored.path.parent.mkdir(exist_ok=True)
                os.replace(tmp, stored.path)
                with _disk_full_refused(stored.path):
                    self._write_index(stored)
                if added is not None:
                    added.append(derived_key)
        finally:
            Path(tmp).unlink(missing_ok=True)
        with self._lock:
            source = self.get(key) or source
            updated = dataclasses.replace(source, derived={**source.derived, name: stored.key})
            self._write_index(updated)
        return stored

    def entries(self) -> list[MediaEntry]:
        """Every stored item with its bytes on disk (file and index) and when it was last stored."""
        return list(self._entries().values())

    def total_bytes(self) -> int:
        return sum(entry.size for entry in self._entries().values())

    def delete(self, key: str) -> bool:
        """Remove an item's file and index (not the items derived from it: they have their own keys)."""
        with self._lock:
            stored = self.get(key)
            self._items.pop(key, None)
            self._index_path(key).unlink(missing_ok=True)
            if self._ledger is not None:
                self._ledger.pop(key, None)
            if stored is None:
                return False
            stored.path.unlink(missing_ok=True)
            return True

    def _entries(self) -> dict[str, MediaEntry]:
        """The count of stored files, made once from the folder and then kept as files come and go."""
        with self._lock:
            if self._ledger is None:
                self._ledger = {}
                for index in self._index_root.glob("??/*.json"):
                    entry = self._measure(index.stem)
                    if entry is not None:
                        self._ledger[entry.key] = entry
            return self._ledger

    def _measure(self, key: str) -> MediaEntry | None:
        stored = self.get(key)
        if stored is None:
            return None
        try:
            stat = stored.path.stat()
            size = stat.st_size + self._index_path(key).stat().st_size
        except FileNotFoundError:
            return None
        return MediaEntry(key=key, size=size, mtime=stat.st_mtime)

    def _account(self, stored: StoredMedia) -> None:
        if self._ledger is not None and (entry := self._measure(stored.key)) is not None:
            self._ledger[stored.key] = entry

    def _rebuild(self, key: str) -> StoredMedia | None:
        """A new index for `key` from its media file, or None (the unreadable index set aside) if no file
        with that content is there."""
        index = self._index_path(key)
        for path in sorted((self.root / key[:2]).glob(f"{key}.*")):
            if not _matches(path, key):
                continue
            try:
                info = inspect_media(path, path.name, _REBUILD_LIMITS)
            except MediaRejected:
                continue
            stored = StoredMedia(
                key=key,
                kind=info.kind,
                path=path,
                name=path.name,
                mime=info.mime,
                size=path.stat().st_size,
                width=info.width,
                height=info.height,
                video=info.video,
            )
            self._write_index(stored)
            return stored
        with contextlib.suppress(FileNotFoundError):
            index.replace(index.with_name(index.name + ".damaged"))
        log.warning("the media file of %s is missing or damaged; its index was set aside", key[:12])
        return None

    def _sweep_incoming(self) -> None:
        """Drop copies left half-way by a crash; young ones may belong to an upload in progress elsewhere."""
        cutoff = time.time() - _STALE_INCOMING_S
        for leftover in self._incoming.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def _stage(self, src: Path) -> tuple[Path, str]:
        """Copy the upload into the store's own folder, hashing it on the way; validation reads this copy."""
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._incoming)
        try:
            with _disk_full_refused(Path(tmp)), os.fdopen(fd, "wb") as out, src.open("rb") as f:
                while chunk := f.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), digest.hexdigest()

    def _data_path(self, key: str, ext: str) -> Path:
        return self.root / key[:2] / f"{key}{ext}"

    def _index_path(self, key: str) -> Path:
        return self._index_root / key[:2] / f"{key}.json"

    def _write_index(self, stored: StoredMedia) -> None:
        data: dict[str, Any] = {
            "kind": stored.kind,
            "file": stored.path.name,
            "name": stored.name,
            "mime": stored.mime,
            "size": stored.size,
            "width": stored.width,
            "height": stored.height,
            "video": dataclasses.asdict(stored.video) if stored.video else None,
            "derived_from": stored.derived_from,
            "derived": dict(stored.derived),
            "stored_at": time.time(),
        }
        index = self._index_path(stored.key)
        index.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=index.parent, suffix=".tmp")
        with _disk_full_refused(Path(tmp)):
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
            os.replace(tmp, index)
        self._items[stored.key] = stored
        self._account(stored)

    def _from_json(self, key: str, data: dict[str, Any]) -> StoredMedia:
        video = data.get("video")
        return StoredMedia(
            key=key,
            kind=data["kind"],
            path=self.root / key[:2] / data["file"],
            name=data["name"],
            mime=data["mime"],
            size=data["size"],
            width=data["width"],
            height=data["height"],
            video=VideoInfo(**video) if video else None,
            derived_from=data.get("derived_from"),
            derived=dict(data.get("derived", {})),
        )


def _matches(path: Path, key: str) -> bool:
    """Whether the file's content still hashes to its key (False for a missing file)."""
    try:
        return _sha256(path) == key
    except FileNotFoundError:
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
