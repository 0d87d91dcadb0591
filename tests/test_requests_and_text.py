"""Requests are capped at the HTTP layer, text that cannot be encoded gets normalised, and the app removes the
raw uploads and served copies it no longer needs (issue 12, items 19, 20 and 16's served copies)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import UPLOADS, RunningApp, app_settings, start_app, write_png
from gradio import processing_utils
from gradio_client.exceptions import AppError
from test_ui_api import send

from ixc_app.chat import ChatSettings, new_conversation
from ixc_app.chat.text import clean_text
from ixc_app.ui.identity import new_owner, parse_handle
from ixc_app.ui.launch import REQUEST_BODY_BYTES
from ixc_app.ui.uploads import upload_cache


@pytest.fixture(scope="module")
def small_app(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[RunningApp]:
    """The app with 1 MB uploads, one per message: an upload request may carry about 2 MB."""
    settings = app_settings(
        tmp_path_factory.mktemp("small"), max_upload_bytes=1024**2, max_files_per_message=1
    )
    running = start_app(settings, engine)
    yield running
    running.close()


def test_a_huge_message_is_refused_before_it_is_parsed(small_app: RunningApp) -> None:
    body = json.dumps({"data": ["x" * (REQUEST_BODY_BYTES + 1)], "fn_index": 0, "session_hash": "abc"})
    reply = httpx.post(small_app.url + "gradio_api/queue/join", content=body.encode(), timeout=60)
    assert reply.status_code == 413
    assert "shorter message" in reply.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"data": ["'
        for _ in range(REQUEST_BODY_BYTES // 2**20 + 1):
            yield b"y" * 2**20
        yield b'"]}'

    reply = httpx.post(small_app.url + "gradio_api/queue/join", content=chunks(), timeout=60)
    assert reply.status_code == 413


def test_an_upload_over_a_messages_worth_of_files_is_refused(small_app: RunningApp) -> None:
    files = [("files", (f"f{i}.png", b"x" * (900 * 1024), "image/png")) for i in range(3)]
    reply = httpx.post(small_app.url + "gradio_api/upload", files=files, timeout=60)
    assert reply.status_code == 413
    assert "fewer or smaller files" in reply.json()["message"]
    one = [("files", ("f.png", b"x" * (900 * 1024), "image/png"))]
    assert httpx.post(small_app.url + "gradio_api/upload", files=one, timeout=60).status_code == 200


def test_lone_surrogates_and_control_characters_are_normalised() -> None:
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("\ud83d\ude00 ok") == "\U0001f600 ok"
    assert clean_text("tab\tnew\nline\x00bell\x07") == "tab\tnew\nlinebell"


def test_a_message_and_a_rename_with_a_lone_surrogate_are_stored(small_app: RunningApp) -> None:
    service = small_app.services.chat
    owner = new_owner()
    conv, _ = service.add_message(new_conversation(owner, ChatSettings()), "broken \udc80 emoji", ())
    assert service.store.get(owner, conv.id).messages[0].text == "broken \ufffd emoji"
    renamed = service.store.rename(owner, conv.id, "title \ud800")
    assert renamed.title == "title \ufffd" == service.store.get(owner, conv.id).title


def uploaded(name: str) -> list[Path]:
    return [p for p in Path(UPLOADS).rglob(name) if p.is_file()]


def test_raw_uploads_are_removed_once_read_accepted_or_refused(small_app: RunningApp, tmp_path: Path) -> None:
    good = write_png(tmp_path / f"good-{uuid.uuid4().hex}.png", (10, 200, 10))
    bad = tmp_path / f"bad-{uuid.uuid4().hex}.png"
    bad.write_text("not an image at all")
    empty = tmp_path / f"empty-{uuid.uuid4().hex}.png"
    empty.write_bytes(b"")
    client = small_app.client()
    send(client, "A good one.", (good,))
    for refused in (bad, empty):
        with pytest.raises(AppError):
            send(client, "A bad one.", (refused,))
    assert uploaded(good.name) == uploaded(bad.name) == uploaded(empty.name) == []


def test_a_deleted_conversations_served_copies_go_with_its_media(
    small_app: RunningApp, tmp_path: Path
) -> None:
    photo = write_png(tmp_path / "served.png", (123, 45, 67))
    owner, conversation_id = parse_handle(send(small_app.client(), "Look.", (photo,))[-1][1])
    conv = small_app.store.get(owner, conversation_id)
    media_path = small_app.store.media.path(conv.media[0].key)
    # what Gradio does when the Chatbot shows the picture: a copy in its cache, under a hash of the content
    copy = processing_utils.save_file_to_cache(media_path, str(upload_cache()))
    assert Path(copy).is_file()
    small_app.services.chat.delete(owner, conversation_id)
    assert not media_path.exists() and not Path(copy).exists()
