"""Export and import of a conversation (issue 12, item 10): a round trip through the API keeps what was said
and shown, and an import reads the archive as untrusted input (limits, names, media validated, new ids)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_harness import RunningApp, app_settings, write_mp4, write_png
from gradio_client import Client, handle_file
from test_chat_service import GatedFakeEngine
from test_chat_versions import three_versions
from test_ui_api import send

from ixc_app.chat import set_feedback, show_version
from ixc_app.chat.preferences import Preferences
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.chat.transfer import CONVERSATION_FILE, FORMAT, VERSION, ImportRejected
from ixc_app.media import MediaRejected
from ixc_app.store import Store
from ixc_app.ui.identity import new_owner, parse_handle


def test_a_conversation_exported_and_imported_through_the_api_keeps_its_turns_and_media(
    app: RunningApp, tmp_path: Path
) -> None:
    photo = write_png(tmp_path / "red.png", (200, 30, 30))
    clip = write_mp4(tmp_path / "clip.mp4")
    client = app.client()
    handle = send(client, "Compare.", (photo,))[-1][1]
    send(client, "And the video?", (clip,), handle)
    downloader = Client(app.url, verbose=False, download_files=str(tmp_path / "downloads"))
    archive = downloader.predict(handle, api_name="/conversation_export")
    assert zipfile.is_zipfile(archive)

    imported = client.predict(handle_file(archive), api_name="/conversation_import")
    original = app.store.get(*parse_handle(handle))
    copy = app.store.get(*parse_handle(imported))
    assert copy is not None and original is not None
    assert (copy.owner, copy.id) != (original.owner, original.id)
    assert [(m.role, m.text, m.finish) for m in copy.messages] == [
        (m.role, m.text, m.finish) for m in original.messages
    ]
    assert [i.key for i in copy.media] == [i.key for i in original.media]
    video = copy.messages[2].media[0]
    assert video.kind == "video" and app.store.media.path(video.strip_key).is_file()
    send(client, "One more question.", (), imported)  # the imported conversation carries on


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ChatService]:
    settings = app_settings(tmp_path / "data", max_files_per_conversation=4)
    store = Store.from_settings(settings)
    yield ChatService(settings, EngineRunner(GatedFakeEngine()), store, Preferences(tmp_path / "preferences"))  # type: ignore[arg-type]
    store.close()


def archive(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def document(messages: list[dict[str, Any]]) -> bytes:
    conv = {"id": "x", "title": "Imported", "created": 1.0, "updated": 1.0, "messages": messages}
    return json.dumps({"format": FORMAT, "version": VERSION, "conversation": conv}).encode()


def png_bytes(tmp_path: Path) -> tuple[str, bytes]:
    import hashlib

    data = write_png(tmp_path / "p.png", (1, 2, 3)).read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def image_message(key: str, name: str = "p.png") -> dict[str, Any]:
    media = {"key": key, "kind": "image", "name": name, "mime": "image/png", "width": 96, "height": 64}
    return {"role": "user", "text": "look", "media": [media]}


def test_an_import_gets_new_ids_and_its_media_validated(tmp_path: Path, service: ChatService) -> None:
    key, data = png_bytes(tmp_path)
    path = archive(tmp_path, {CONVERSATION_FILE: document([image_message(key)]), f"media/{key}.png": data})
    owner = new_owner()
    first = service.import_conversation(owner, path)
    second = service.import_conversation(owner, path)
    assert first.id != second.id and first.owner == owner
    assert service.store.media.path(key).read_bytes() == data
    assert [s.id for s in service.conversations(owner)] == [second.id, first.id]


@pytest.mark.parametrize(
    ("entries", "sentence"),
    [
        ({"../../evil.txt": b"x"}, "files an export does not write"),
        ({"/abs/media.png": b"x"}, "files an export does not write"),
        ({f"media/{'a' * 64}.png": b"x"}, "no conversation.json"),
        ({CONVERSATION_FILE: b"{not json"}, "damaged"),
        ({CONVERSATION_FILE: json.dumps({"format": "other"}).encode()}, "not a conversation exported"),
        ({**{f"media/{i:064x}.png": b"x" for i in range(6)}, CONVERSATION_FILE: b"{}"}, "more files"),
    ],
)
def test_archives_that_an_export_does_not_write_are_refused_with_a_sentence(
    tmp_path: Path, service: ChatService, entries: dict[str, bytes], sentence: str
) -> None:
    with pytest.raises(ImportRejected, match=sentence):
        service.import_conversation(new_owner(), archive(tmp_path, entries))
    assert files(service.settings.media_dir) == []


def test_a_media_file_in_an_archive_is_validated_like_an_upload(tmp_path: Path, service: ChatService) -> None:
    fake = "b" * 64
    path = archive(
        tmp_path, {CONVERSATION_FILE: document([image_message(fake)]), f"media/{fake}.png": b"text"}
    )
    with pytest.raises(MediaRejected):
        service.import_conversation(new_owner(), path)
    assert files(service.settings.media_dir) == []


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, service: ChatService) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"plain text, not a zip")
    with pytest.raises(ImportRejected, match="not a readable zip"):
        service.import_conversation(new_owner(), path)


def files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_an_export_keeps_every_version_of_an_answer(tmp_path: Path, service: ChatService) -> None:
    conv = set_feedback(show_version(three_versions(), 1), 1, "like")
    service.store.put(conv)
    path = service.export(conv.owner, conv.id, tmp_path / "out")
    copy = service.import_conversation(new_owner(), path)
    assert copy.messages == conv.messages
    assert [v.text for v in copy.messages[-1].all_versions] == ["first", "second", "third"]


def test_an_archive_with_answer_versions_out_of_place_is_refused(
    tmp_path: Path, service: ChatService
) -> None:
    answer = {"role": "assistant", "text": "a", "finish": "stop", "versions": [{"text": "b"}], "version": 5}
    path = archive(tmp_path, {CONVERSATION_FILE: document([{"role": "user", "text": "q"}, answer])})
    with pytest.raises(ImportRejected, match="damaged"):
        service.import_conversation(new_owner(), path)
    answer["version"] = 1
    imported = service.import_conversation(
        new_owner(), archive(tmp_path, {CONVERSATION_FILE: document([{"role": "user", "text": "q"}, answer])})
    )
    assert [(v.text, v.finish) for v in imported.messages[-1].all_versions] == [
        ("b", "interrupted"),
        ("a", "stop"),
    ]
