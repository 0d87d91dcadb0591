"""The image library: ranking in Chinese and English, captions made once, folders validated like uploads, and
the conversation store never evicting what articles and libraries use."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from compose_fakes import ScriptedComposeFakeEngine, compose_service, image_folder

from ixc_app.compose.library import SearchIndex, pick_unused, tokens
from ixc_app.media import MediaStore
from ixc_app.store import Store

OWNER = "owner-token-0123456789"
CAPTIONS = {
    "lake": "夕阳下的西湖，湖面上有几只小船。 The West Lake at sunset with small boats.",
    "tower": "雷峰塔在山顶上，周围是绿树。 Leifeng Pagoda on the hill among green trees.",
    "cat": "一只橘猫在沙发上睡觉。 An orange cat sleeping on a sofa.",
    "scooter": "一个人正站在充电桩前给电动滑板车充电。 A man charging an electric scooter.",
    "market": "热闹的夜市，人们在吃小吃。 A busy night market with street food.",
}


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.of_captions(list(CAPTIONS), list(CAPTIONS.values()))


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("西湖的日落和小船", "lake"),
        ("山上的塔", "tower"),
        ("猫在睡觉", "cat"),
        ("给电动车充电", "scooter"),
        ("夜市小吃", "market"),
        ("sunset over the lake", "lake"),
        ("a pagoda on a hill", "tower"),
        ("sleeping cat", "cat"),
        ("charging a scooter", "scooter"),
    ],
)
def test_ranking_in_chinese_and_english(index: SearchIndex, query: str, best: str) -> None:
    assert index.search(query)[0] == best


def test_search_excludes_used_images_and_unmatched_queries_find_nothing(index: SearchIndex) -> None:
    assert "lake" not in index.search("西湖 sunset", exclude=["lake"])
    assert index.search("zzzz qqqq") == []
    assert tokens("西湖的日落, the Sunset!") == ["西湖", "西", "湖", "日落", "日", "落", "sunset"]


def test_candidates_fill_up_from_the_pool() -> None:
    assert pick_unused(["b"], ["a", "b", "c", "d"], ["c"], 3) == ("b", "a", "d")


def test_a_second_index_run_calls_the_engine_zero_times(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "library"
    image_folder(folder, 3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    (folder / "notes.txt").write_text("not an image")
    engine = ScriptedComposeFakeEngine(answer=lambda request: "湖边的小船。 Boats by the lake.")
    service = compose_service(tmp_path / "data", engine, folders=(folder,))
    with caplog.at_level(logging.WARNING, logger="ixc_app.compose.library"):
        progress = list(service.index_library(OWNER))
    assert progress[-1].done == progress[-1].total == 3 and progress[-1].captioned_now == 3
    assert len(engine.requests) == 3
    skipped = [r.getMessage() for r in caplog.records]
    assert any("broken.png" in m and "damaged" in m for m in skipped)
    assert any("notes.txt" in m for m in skipped)
    request = engine.requests[0]
    assert request.mode == "base" and len(request.turns[0].images) == 1

    again = compose_service(tmp_path / "data", engine, folders=(folder,))  # after a restart, too
    progress = list(again.index_library(OWNER))
    assert progress[-1].captioned_now == 0 and len(engine.requests) == 3
    assert len(again.library.search(OWNER, "lake boats")) == 3


def test_indexing_stops_between_images(tmp_path: Path) -> None:
    folder = tmp_path / "library"
    image_folder(folder, 4)
    engine = ScriptedComposeFakeEngine(answer=lambda request: "一张图")
    service = compose_service(tmp_path / "data", engine, folders=(folder,))
    run = service.index_library(OWNER)
    next(run), next(run)
    run.close()
    assert len(engine.requests) == 1
    assert list(service.index_library(OWNER))[-1].captioned_now == 3


def test_the_owner_library_is_private_and_folders_shared(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine(), folders=(tmp_path / "shared",))
    image_folder(tmp_path / "shared", 1)
    service.library.scan_folders()
    mine = service.add_to_library(OWNER, [str(p) for p in image_folder(tmp_path / "mine", 3)[1:]])
    assert set(mine) <= set(service.library.pool(OWNER))
    others = service.library.pool("another-owner-0123456")
    assert len(others) == 1 and not set(mine) & set(others)


def test_the_store_never_evicts_media_used_by_articles_or_libraries(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    media: MediaStore = service.media
    store = Store(tmp_path / "data" / "store", media, max_bytes=1, grace_s=0)
    kept = service.add_to_library(OWNER, [str(image_folder(tmp_path / "a", 1)[0])])
    loose = media.add(image_folder(tmp_path / "b", 2)[1], "loose.png", _limits())
    time.sleep(0.01)
    without_hook = store.referenced_media()
    store.add_reference_source(service.store.referenced_media)
    report = store.enforce_size_bound(now=time.time() + 10)
    assert kept[0] not in without_hook
    assert report.evicted == (loose.key,)
    assert media.get(kept[0]) is not None


def _limits():  # type: ignore[no-untyped-def]
    from ixc_app.chat.ingest import media_limits
    from ixc_app.config import Limits

    return media_limits(Limits())


def test_library_folders_come_from_repeated_flags_or_a_path_list() -> None:
    from ixc_app.config import parse_settings

    assert parse_settings(["--library", "/a", "--library", "/b:/c"]).library_dirs == (
        Path("/a"),
        Path("/b"),
        Path("/c"),
    )
    assert parse_settings([], {"IXC_LIBRARY": "/x:/y"}).library_dirs == (Path("/x"), Path("/y"))
    assert parse_settings([], {}).library_dirs == ()
