"""The store: per-owner isolation, persistence across a restart, and the size bound on unreferenced media."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ixc_app.chat import (
    Conversation,
    MediaItem,
    add_user_message,
    append_answer,
    finish_answer,
    ingest_upload,
    new_conversation,
    start_answer,
)
from ixc_app.config import Limits, parse_settings
from ixc_app.engines.base import Finished
from ixc_app.media import MediaStore
from ixc_app.store import ConversationNotFound, Store

ALICE = "alice-token-aaaaaaaaaaaa"
BOB = "bob-token-bbbbbbbbbbbbbbb"
LIMITS = Limits()
DAY = 24 * 3600.0


def open_store(root: Path, max_bytes: int = 1024**3, grace_s: float = 0.0) -> Store:
    return Store(root / "store", MediaStore(root / "media"), max_bytes=max_bytes, grace_s=grace_s)


def noise_png(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> Path:
    """Incompressible pixels, so every file is about the same, predictable size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def h264_clip(path: Path, seconds: int = 2, fps: int = 5) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(seconds * fps):
            rgb = np.full((64, 96, 3), (i * 25) % 256, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


def answered(conv: Conversation, text: str, media: tuple[MediaItem, ...] = ()) -> Conversation:
    conv = append_answer(start_answer(add_user_message(conv, text, media)), "An answer.")
    return finish_answer(conv, Finished("stop", 10, 2))


def test_owners_never_see_each_others_conversations(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        mine = answered(new_conversation(ALICE, now=1.0), "Alice's question")
        store.put(mine)
        assert [s.id for s in store.list(ALICE)] == [mine.id]
        assert store.list(BOB) == []
        assert store.get(BOB, mine.id) is None
        assert not store.delete(BOB, mine.id)
        with pytest.raises(ConversationNotFound):
            store.rename(BOB, mine.id, "stolen")
        assert store.get(ALICE, mine.id) == mine

        theirs = new_conversation(BOB)
        theirs = Conversation.from_dict({**theirs.to_dict(), "id": mine.id})
        store.put(answered(theirs, "Bob's question with the same id"))
        assert store.get(ALICE, mine.id) == mine
        assert store.get(BOB, mine.id).messages[0].text == "Bob's question with the same id"


def test_list_rename_and_delete(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        old = answered(new_conversation(ALICE, now=1.0), "old")
        new = answered(new_conversation(ALICE, now=2.0), "new")
        store.put(old)
        store.put(new)
        assert [(s.id, s.title) for s in store.list(ALICE)] == [(new.id, "new"), (old.id, "old")]
        renamed = store.rename(ALICE, old.id, "Renamed")
        assert renamed.title == "Renamed"
        assert store.get(ALICE, old.id).title == "Renamed"
        assert store.list(ALICE)[0].title == "Renamed"
        assert store.delete(ALICE, new.id)
        assert [s.id for s in store.list(ALICE)] == [old.id]
        assert store.get(ALICE, new.id) is None
        assert not store.delete(ALICE, new.id)


def test_conversations_and_media_survive_a_restart(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        image = ingest_upload(store.media, noise_png(tmp_path / "photo.png", 1), LIMITS)
        video = ingest_upload(store.media, h264_clip(tmp_path / "clip.mp4"), LIMITS)
        conv = answered(new_conversation(ALICE), "What do you see?", (image, video))
        store.put(conv)
        image_bytes = store.media.path(image.key).read_bytes()

    with open_store(tmp_path) as reopened:
        (summary,) = reopened.list(ALICE)
        assert (summary.id, summary.title) == (conv.id, "What do you see?")
        again = reopened.get(ALICE, conv.id)
        assert again == conv
        assert reopened.media.path(image.key).read_bytes() == image_bytes
        strip = reopened.media.get(video.strip_key)
        assert strip is not None
        assert (strip.width, strip.height) == (video.strip_width, video.strip_height)
        assert reopened.media.path(video.key).is_file()


def test_size_bound_evicts_unreferenced_media_oldest_first(tmp_path: Path) -> None:
    with open_store(tmp_path, max_bytes=1024**3) as store:
        items = [ingest_upload(store.media, noise_png(tmp_path / f"{i}.png", i), LIMITS) for i in range(4)]
        for age_days, item in zip((4, 3, 2, 1), items, strict=True):
            path = store.media.path(item.key)
            os.utime(path, (path.stat().st_atime, 1_000_000.0 - age_days * DAY))
        referenced = items[0]
        store.put(answered(new_conversation(ALICE), "keep this", (referenced,)))
        sizes = {e.key: e.size for e in store.media.entries()}
        # Room for everything but about one and a half images: two must go, and the oldest is in use.
        store.max_bytes = store.size_bytes() - sizes[items[1].key] - sizes[items[2].key] // 2

        report = store.enforce_size_bound(now=1_000_000.0)

        assert report.evicted == (items[1].key, items[2].key)
        assert report.bytes_after <= store.max_bytes < report.bytes_before
        assert store.media.get(referenced.key) is not None
        assert store.media.get(items[3].key) is not None
        assert store.media.get(items[1].key) is None
        assert store.size_bytes() == report.bytes_after


def test_size_bound_keeps_referenced_and_recent_media_even_when_over(tmp_path: Path) -> None:
    with open_store(tmp_path, grace_s=3600.0) as store:
        used = ingest_upload(store.media, noise_png(tmp_path / "used.png", 1), LIMITS)
        fresh = ingest_upload(store.media, noise_png(tmp_path / "fresh.png", 2), LIMITS)
        store.put(answered(new_conversation(BOB), "uses one", (used,)))
        store.max_bytes = 1
        report = store.enforce_size_bound()
        assert report.evicted == ()
        assert store.media.get(used.key) is not None
        assert store.media.get(fresh.key) is not None


def test_deleting_a_conversation_deletes_the_media_only_it_used(tmp_path: Path) -> None:
    """At once, even media saved a minute ago: the grace that protects uploads on their way into a message
    must not keep a deleted conversation's pictures readable."""
    now = 1_000_000.0
    with open_store(tmp_path, grace_s=3600.0) as store:
        shared = ingest_upload(store.media, noise_png(tmp_path / "shared.png", 1), LIMITS)
        own = ingest_upload(store.media, noise_png(tmp_path / "own.png", 2), LIMITS)
        video = ingest_upload(store.media, h264_clip(tmp_path / "clip.mp4"), LIMITS)
        fresh = ingest_upload(store.media, noise_png(tmp_path / "fresh.png", 3), LIMITS)
        for key in (*shared.keys, *own.keys, *video.keys, *fresh.keys):
            path = store.media.path(key)
            age = 60.0 if key == fresh.key else DAY
            os.utime(path, (path.stat().st_atime, now - age))
        alices = answered(new_conversation(ALICE), "q", (shared, own, video, fresh))
        bobs = answered(new_conversation(BOB), "q", (shared,))
        store.put(alices)
        store.put(bobs)
        gone = [store.media.path(key) for key in (*own.keys, *video.keys, *fresh.keys)]
        assert len(gone) == 4  # the images, the video and its frame strip

        assert store.delete(ALICE, alices.id)

        assert not any(path.exists() for path in gone)
        assert all(store.media.get(key) is None for key in (*own.keys, *video.keys, *fresh.keys))
        assert store.media.path(shared.key).is_file()  # Bob's conversation still shows it
        assert not store.delete(ALICE, alices.id)


def test_putting_new_media_applies_the_bound(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        stale = ingest_upload(store.media, noise_png(tmp_path / "stale.png", 4), LIMITS)
        item = ingest_upload(store.media, noise_png(tmp_path / "b.png", 5), LIMITS)
        store.max_bytes = store.size_bytes() - 1
        store.put(answered(new_conversation(ALICE), "q", (item,)))
        assert store.media.get(stale.key) is None
        assert store.media.get(item.key) is not None


def test_from_settings_uses_the_data_dir(tmp_path: Path) -> None:
    settings = parse_settings(["--data-dir", str(tmp_path), "--max-data-size", "5MB"], {})
    with Store.from_settings(settings) as store:
        assert store.max_bytes == 5 * 1024**2
        item = ingest_upload(store.media, noise_png(tmp_path / "c.png", 6), LIMITS)
        assert store.media.path(item.key).is_relative_to(tmp_path / "media")
    assert (tmp_path / "store").is_dir()
    # only media files are in the folder the browser may read; their indexes are beside it
    assert [p.suffix for p in (tmp_path / "media").rglob("*") if p.is_file()] == [".png"]
    assert (tmp_path / "media-private" / "index" / item.key[:2] / f"{item.key}.json").is_file()


def mpeg4_mkv(path: Path, seconds: int = 2, fps: int = 5) -> Path:
    """A container and codec browsers do not play."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(seconds * fps):
            rgb = np.full((64, 96, 3), (i * 25) % 256, dtype=np.uint8)
            rgb[:, :48] = (200, 30, 30)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_ingesting_a_playable_video_builds_its_strip_with_progress(tmp_path: Path) -> None:
    steps: list[tuple[float, str]] = []
    with open_store(tmp_path) as store:
        item = ingest_upload(
            store.media, h264_clip(tmp_path / "clip.mp4"), LIMITS, progress=lambda f, d: steps.append((f, d))
        )
        assert (item.kind, item.mime, item.name, item.playable, item.poster_key) == (
            "video",
            "video/mp4",
            "clip.mp4",
            True,
            None,
        )
        assert (item.width, item.height) == (96, 64)
        assert item.duration_s == pytest.approx(2.0, abs=0.3)
        assert item.strip_width == 560
        assert item.strip_height % 560 == 0
        strip = store.media.get(item.strip_key)
        assert (strip.width, strip.height) == (item.strip_width, item.strip_height)
        fractions = [f for f, _ in steps]
        assert fractions == sorted(fractions)
        assert fractions[-1] == 1.0
        decoding = [d for _, d in steps if d.startswith("decoding")]
        assert decoding == ["decoding frame 1/2", "decoding frame 2/2"]

        steps.clear()
        again = ingest_upload(
            store.media, tmp_path / "clip.mp4", LIMITS, progress=lambda f, d: steps.append((f, d))
        )
        assert again == item
        assert not any(d.startswith("decoding") for _, d in steps)


def test_a_video_browsers_cannot_play_gets_a_poster_of_its_first_frame(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        item = ingest_upload(store.media, mpeg4_mkv(tmp_path / "clip.mkv"), LIMITS)
        assert not item.playable
        assert item.mime == "video/x-matroska"
        assert item.poster_key is not None
        with Image.open(store.media.path(item.poster_key)) as poster:
            assert poster.size == (1120, 746)
            left, right = poster.getpixel((100, 300)), poster.getpixel((1000, 300))
        assert left[0] > 150 and left[1] < 80
        assert right[0] < 80
        assert item.poster_key != item.strip_key
