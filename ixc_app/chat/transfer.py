"""A conversation as a file its user keeps: its JSON and its images and videos in one zip, and back again.

Conversations live on the server under an owner token the browser keeps; clearing the browser's site data
loses the token. An export is the way back: importing it makes a new conversation of whoever imports it.
An archive is untrusted input, so an import reads it the way uploads are read: the zip's size and number of
entries are bounded before anything is unpacked, entry names must be exactly the ones an export writes (no
paths, so nothing can land outside the store), every media file goes through the same validation as an
upload (`ingest_upload`, which also rebuilds a video's frame strip), and ids are minted afresh.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ixc_app.chat.conversation import (
    TITLE_CHARS,
    AnswerVersion,
    Conversation,
    ConversationError,
    MediaItem,
    Message,
    MessageFinish,
    default_title,
    new_conversation_id,
)
from ixc_app.chat.ingest import ingest_upload
from ixc_app.chat.text import clean_text
from ixc_app.config import Limits
from ixc_app.i18n import tr
from ixc_app.media import MediaStore

FORMAT = "ixc-studio-conversation"
VERSION = 1
CONVERSATION_FILE = "conversation.json"
MAX_JSON_BYTES = 16 * 1024**2
MAX_MESSAGES = 2000
MAX_ANSWER_CHARS = 200_000
_MEDIA_NAME = re.compile(r"^media/([0-9a-f]{64})\.([a-z0-9]{1,8})$")
_COPY_CHUNK = 1 << 20
_Part = TypeVar("_Part", Message, AnswerVersion)


class ImportRejected(ConversationError):
    """An archive that cannot be imported; one sentence for the user."""


def export_archive(conv: Conversation, media: MediaStore, folder: Path) -> Path:
    """Write `conv` (without its owner) and the original files of its media to a zip in `folder`."""
    data = conv.to_dict()
    data.pop("owner")
    document = {"format": FORMAT, "version": VERSION, "exported": time.time(), "conversation": data}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_file_stem(conv.title)}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CONVERSATION_FILE, json.dumps(document, ensure_ascii=False, indent=1))
        for key in dict.fromkeys(item.key for item in conv.media):
            stored = media.path(key)
            archive.write(stored, f"media/{key}{stored.suffix.lower()}", compress_type=zipfile.ZIP_STORED)
    return path


def max_archive_bytes(limits: Limits) -> int:
    """The largest archive an import reads: a conversation's worth of the largest uploads and its text."""
    return limits.max_files_per_conversation * limits.max_upload_bytes + MAX_JSON_BYTES


def import_archive(path: Path, owner: str, media: MediaStore, limits: Limits) -> Conversation:
    """The conversation in the archive at `path`, as a new conversation of `owner`, its media stored."""
    if path.stat().st_size > max_archive_bytes(limits):
        raise ImportRejected(
            tr(
                "The file is over the {mb:.0f} MB an import may be; export the conversation again from this "
                "app.",
                mb=max_archive_bytes(limits) / 1024**2,
            )
        )
    try:
        with zipfile.ZipFile(path) as archive:
            files = _check_entries(archive, limits)
            document = _read_document(archive, files)
            conv = _parse(document, owner)
            return _with_media(conv, archive, files, media, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ImportRejected(
            tr("The file is not a conversation exported by this app (not a readable zip).")
        ) from exc


def _check_entries(archive: zipfile.ZipFile, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_files_per_conversation + 1:
        raise ImportRejected(
            tr("The archive holds more files than a conversation may; it was not made by this app.")
        )
    files: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name in files or not (name == CONVERSATION_FILE or _MEDIA_NAME.match(name)):
            raise ImportRejected(
                tr("The archive holds files an export does not write; it was not made by this app.")
            )
        files[name] = info
    if sum(info.file_size for info in infos) > max_archive_bytes(limits):
        raise ImportRejected(
            tr("The archive unpacks to more than an import may hold; it was not made by this app.")
        )
    if CONVERSATION_FILE not in files:
        raise ImportRejected(
            tr("The archive has no {file}; export the conversation again.", file=CONVERSATION_FILE)
        )
    return files


def _read_document(archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo]) -> Any:
    with archive.open(files[CONVERSATION_FILE]) as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ImportRejected(tr("The conversation in the archive is too long to import."))
    try:
        return json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise ImportRejected(
            tr("The {file} in the archive is damaged; export it again.", file=CONVERSATION_FILE)
        ) from exc


def _parse(document: Any, owner: str) -> Conversation:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ImportRejected(tr("The file is not a conversation exported by this app."))
    if document.get("version") != VERSION:
        raise ImportRejected(
            tr("The conversation was exported by a version of this app that this one cannot read.")
        )
    data = document.get("conversation")
    try:
        if not isinstance(data, dict) or len(data.get("messages") or ()) > MAX_MESSAGES:
            raise TypeError("no conversation, or too many messages")
        now = time.time()
        conv = Conversation.from_dict({**data, "id": new_conversation_id(), "owner": owner, "created": now})
        return replace(conv, updated=now, title=_title(conv.title), messages=_messages(conv.messages))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ImportRejected(
            tr("The {file} in the archive is damaged; export it again.", file=CONVERSATION_FILE)
        ) from exc


def _title(title: Any) -> str:
    text = " ".join(clean_text(str(title)).split())[:TITLE_CHARS]
    return text or default_title()


def _messages(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """Text cleaned and bounded, an answer's versions' too; an answer that was still streaming when exported
    is marked interrupted."""
    out = []
    for m in messages:
        if m.role not in ("user", "assistant") or not isinstance(m.text, str):
            raise ValueError("a message with no role or no text")
        finish = "interrupted" if m.role == "assistant" and m.finish is None else m.finish
        versions = tuple(_answer_part(v, v.finish or "interrupted") for v in m.versions)
        m = replace(m, media=m.media if m.role == "user" else (), versions=versions)
        out.append(_answer_part(m, finish))
    return tuple(out)


def _answer_part(part: _Part, finish: MessageFinish | None) -> _Part:
    if not isinstance(part.text, str):
        raise ValueError("a version with no text")
    return replace(part, text=clean_text(part.text)[:MAX_ANSWER_CHARS], finish=finish)


def _with_media(
    conv: Conversation,
    archive: zipfile.ZipFile,
    files: dict[str, zipfile.ZipInfo],
    media: MediaStore,
    limits: Limits,
) -> Conversation:
    """Each media item re-validated and stored from the archive's file with its key (new items, new keys)."""
    by_key = {match.group(1): info for name, info in files.items() if (match := _MEDIA_NAME.match(name))}
    if len(conv.media) > limits.max_files_per_conversation:
        raise ImportRejected(tr("The conversation holds more images and videos than a conversation may."))
    stored: dict[str, MediaItem] = {}
    with tempfile.TemporaryDirectory(prefix="ixc-import-") as tmp:
        for item in conv.media:
            if item.key in stored:
                continue
            info = by_key.get(item.key)
            if info is None:
                raise ImportRejected(
                    tr("The archive lacks the file of '{name}'; export it again.", name=item.name)
                )
            unpacked = Path(tmp) / f"{item.key}{Path(info.filename).suffix}"
            with archive.open(info) as src, unpacked.open("wb") as out:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
            name = clean_text(Path(item.name).name) or unpacked.name
            stored[item.key] = ingest_upload(media, unpacked, limits, name=name)
    messages = tuple(replace(m, media=tuple(stored[i.key] for i in m.media)) for m in conv.messages)
    return replace(conv, messages=messages)


def _file_stem(title: str) -> str:
    stem = re.sub(r"[^\w\- ]+", "", title, flags=re.UNICODE).strip().replace(" ", "-")
    return (stem or "conversation")[:60]
