"""The data dir stays bounded and survives damage: the bound counts everything and refuses what does not fit,
media references are counted, a full disk refuses uploads only, and a damaged media index or store database
is isolated instead of breaking the app (issue 12, items 16-18)."""

from __future__ import annotations

import errno
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_harness import app_settings, start_app
from gradio_client.exceptions import AppError
from PIL import Image
from test_chat_service import GatedFakeEngine
from test_store import ALICE, BOB, LIMITS, answered, open_store
from test_ui_api import send

from ixc_app.chat import ingest_upload, new_conversation
from ixc_app.chat.drafts import InputRejected
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import MediaStore, StorageFull
from ixc_app.media import store as media_store
from ixc_app.store import Store


def noise_png(path: Path, seed: int, side: int = 64) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ChatService]:
    settings = app_settings(tmp_path / "data")
    store = Store.from_settings(settings)
    yield ChatService(settings, EngineRunner(GatedFakeEngine()), store, Preferences(tmp_path / "preferences"))  # type: ignore[arg-type]
    store.close()


def test_the_bound_counts_raw_uploads_and_refuses_an_upload_that_does_not_fit(
    tmp_path: Path, service: ChatService, caplog: pytest.LogCaptureFixture
) -> None:
    uploads = service.settings.data_dir / "uploads"
    uploads.mkdir()
    raw = noise_png(uploads / "photo.png", 1, side=256)
    in_use = ingest_upload(service.store.media, noise_png(tmp_path / "used.png", 2), LIMITS)
    service.store.put(answered(new_conversation(ALICE), "keep", (in_use,)))
    media_before = files_under(service.settings.media_dir)
    service.store.max_bytes = service.store.size_bytes() + raw.stat().st_size // 2

    with pytest.raises(StorageFull, match="storage for uploads is full"):
        service.ingest([str(raw)])

    assert files_under(service.settings.media_dir) == media_before
    assert service.store.size_bytes() <= service.store.max_bytes
    assert f"under its bound of {service.store.max_bytes} bytes" in caplog.text


def test_an_upload_evicts_unreferenced_media_to_make_room(tmp_path: Path, service: ChatService) -> None:
    service.store.grace_s = 0.0
    stale = ingest_upload(service.store.media, noise_png(tmp_path / "stale.png", 3, side=128), LIMITS)
    new = noise_png(tmp_path / "new.png", 4, side=128)
    service.store.max_bytes = service.store.size_bytes() + new.stat().st_size // 2
    (item,) = service.ingest([str(new)])
    assert service.store.media.get(stale.key) is None
    assert service.store.media.get(item.key) is not None


def test_references_are_counted_across_owners_and_rebuilt_for_an_old_store(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        shared = ingest_upload(store.media, noise_png(tmp_path / "s.png", 5), LIMITS)
        own = ingest_upload(store.media, noise_png(tmp_path / "o.png", 6), LIMITS)
        alices = answered(new_conversation(ALICE), "q", (shared, own))
        store.put(alices)
        store.put(answered(new_conversation(BOB), "q", (shared,)))
        assert (store.references(shared.key), store.references(own.key)) == (2, 1)
        # A store written before references were counted: the counts are rebuilt when it is opened.
        for key in list(store._cache.iterkeys()):
            if key[0] in ("ref", "refs"):
                store._cache.delete(key)
    with open_store(tmp_path) as store:
        assert (store.references(shared.key), store.references(own.key)) == (2, 1)
        store.delete(ALICE, alices.id)
        assert store.media.get(own.key) is None
        assert store.media.get(shared.key) is not None
        assert store.references(shared.key) == 1


class FullDiskFile(io.RawIOBase):
    """A fake file (tests only) whose writes fail as on a full disk: ENOSPC at the write call."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_refuses_uploads_with_a_sentence_leaves_nothing_and_text_still_works(
    tmp_path: Path, service: ChatService, monkeypatch: pytest.MonkeyPatch, real_tokenizer_path: Path
) -> None:
    service.runner.engine.tokenizer = Tokenizer.from_file(real_tokenizer_path)
    photo = noise_png(tmp_path / "photo.png", 7)
    real_fdopen = media_store.os.fdopen

    def full_disk(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        real_fdopen(fd).close()
        return FullDiskFile()

    monkeypatch.setattr(media_store.os, "fdopen", full_disk)
    with pytest.raises(StorageFull, match="disk is full"):
        service.ingest([str(photo)])
    assert files_under(service.settings.data_dir / "media") == []
    assert files_under(service.settings.data_dir / "media-private") == []

    conv, _ = service.add_message(new_conversation(ALICE), "Text still works.", ())
    assert service.store.get(ALICE, conv.id).messages[0].text == "Text still works."


def test_a_corrupt_media_index_is_rebuilt_from_its_file_and_breaks_no_other_upload(tmp_path: Path) -> None:
    media = MediaStore(tmp_path / "media")
    item = ingest_upload(media, noise_png(tmp_path / "a.png", 8), LIMITS)
    index = tmp_path / "media-private" / "index" / item.key[:2] / f"{item.key}.json"
    index.write_text('{"kind": "ima', encoding="utf-8")
    orphan = tmp_path / "media-private" / "index" / "ab" / ("ab" + "0" * 62 + ".json")
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"\xff\xfe garbage")

    reopened = MediaStore(tmp_path / "media")
    assert {e.key for e in reopened.entries()} == {item.key}
    rebuilt = reopened.get(item.key)
    assert rebuilt is not None and (rebuilt.kind, rebuilt.width) == ("image", 64)
    assert json.loads(index.read_text(encoding="utf-8"))["kind"] == "image"
    other = ingest_upload(reopened, noise_png(tmp_path / "b.png", 9), LIMITS)
    assert reopened.path(other.key).is_file()


def test_uploading_a_file_again_repairs_its_damaged_stored_copy(tmp_path: Path) -> None:
    media = MediaStore(tmp_path / "media")
    photo = noise_png(tmp_path / "a.png", 10)
    item = ingest_upload(media, photo, LIMITS)
    stored = media.path(item.key)
    stored.write_bytes(stored.read_bytes()[:100])
    ingest_upload(media, photo, LIMITS)
    assert stored.read_bytes() == photo.read_bytes()


@pytest.mark.parametrize("damage", ["garbled", "truncated"])
def test_a_damaged_store_database_is_moved_aside_and_an_empty_store_starts(
    tmp_path: Path, damage: str
) -> None:
    settings = app_settings(tmp_path / "data")
    with Store.from_settings(settings) as store:
        for i in range(50):
            store.put(answered(new_conversation(ALICE), f"question {i} " + "x" * 2000))
    database = settings.store_dir / "cache.db"
    data = database.read_bytes()
    if damage == "garbled":
        database.write_bytes(data[:100] + b"\x13\x37" * 2000 + data[4100:])
    else:
        database.write_bytes(data[: len(data) // 3])

    with Store.from_settings(settings) as store:
        assert store.recovered_from is not None and store.recovered_from.is_dir()
        assert store.recovered_from.name.startswith("store.damaged-")
        assert (store.recovered_from / "cache.db").read_bytes() != data
        assert store.list(ALICE) == []
        conv = answered(new_conversation(ALICE), "a fresh start")
        store.put(conv)
        assert store.get(ALICE, conv.id) == conv


def test_the_app_refuses_uploads_beyond_the_bound_with_a_sentence(tmp_path: Path, engine: Any) -> None:
    app = start_app(app_settings(tmp_path / "data"), engine)
    try:
        photos = [noise_png(tmp_path / f"p{i}.png", 20 + i, side=256) for i in range(6)]
        app.store.max_bytes = app.store.size_bytes() + int(3.5 * photos[0].stat().st_size)
        client, refused = app.client(), []
        for photo in photos:
            try:
                send(client, "What is this?", (photo,))
            except AppError as exc:
                refused.append(str(exc))
        assert 0 < len(refused) < len(photos)
        assert all("storage for uploads is full" in sentence for sentence in refused)
        assert app.store.size_bytes() <= app.store.max_bytes
    finally:
        app.close()


def test_a_message_refused_after_its_files_were_read_keeps_none_of_them(
    tmp_path: Path, service: ChatService
) -> None:
    """The conversation was deleted while the files were read: the message is refused and the files it
    stored go, while a file another conversation shows stays."""
    shared = ingest_upload(service.store.media, noise_png(tmp_path / "shared.png", 3), LIMITS)
    service.store.put(answered(new_conversation(ALICE), "keep", (shared,)))
    gone = answered(new_conversation(ALICE), "deleted meanwhile")
    media = service.ingest(
        [str(noise_png(tmp_path / "new.png", 4)), str(noise_png(tmp_path / "again.png", 3))]
    )
    assert len(files_under(service.settings.media_dir)) > 1

    with pytest.raises(InputRejected, match="was deleted while the message was being prepared"):
        service.add_message(gone, "And this?", media)

    assert service.store.media.get(media[0].key) is None
    assert service.store.media.get(shared.key) is not None
