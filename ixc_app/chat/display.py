"""The conversation as `gr.Chatbot` messages, as plain dicts (this module does not import gradio).

Exactly one Chatbot message per conversation message, in order, so the index Gradio reports for like, edit,
retry and undo events is the index into `Conversation.messages`. A user message shows its media first, inline,
then its text. Browsers play only MP4/H.264 and WebM; any other video is shown as its poster frame, labelled
with the file's name. While a message's attachments are being read it shows as a pending message after the
conversation's own: display only, since it is not in the conversation until every file is stored.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from typing import Any

from ixc_app.chat.conversation import Conversation, MediaItem, Message
from ixc_app.chat.request import MediaPath

FINISH_NOTES = {
    "cancelled": "*(stopped)*",
    "length": "*(the answer reached the maximum length)*",
    "interrupted": "*(interrupted: the server stopped while writing this answer; press Retry to answer it "
    "again)*",
}


def _file(path: str, mime: str, alt: str) -> dict[str, Any]:
    """A file part with its MIME type given, so display does not depend on the stored file's extension."""
    return {"type": "file", "file": {"path": path, "mime_type": mime, "orig_name": alt}, "alt_text": alt}


def media_part(item: MediaItem, media_path: MediaPath) -> dict[str, Any]:
    if item.kind == "video" and not item.playable and item.poster_key:
        path = str(media_path(item.poster_key))
        mime = mimetypes.guess_type(path)[0] or "image/png"
        return _file(path, mime, f"{item.name} (video; this format plays only after download)")
    return _file(str(media_path(item.key)), item.mime, item.name)


def _answer_text(message: Message) -> str:
    notes = []
    if message.error:
        notes.append(f"**Error:** {message.error}")
    elif message.finish in FINISH_NOTES:
        notes.append(FINISH_NOTES[message.finish])
    if message.stats and message.stats.dropped_messages:
        n = message.stats.dropped_messages
        notes.append(f"*({n} earlier messages were left out to fit the context budget.)*")
    return "\n\n".join([message.text, *notes]) if message.text else "\n\n".join(notes)


def to_chatbot(conv: Conversation, media_path: MediaPath) -> list[dict[str, Any]]:
    """Messages in `gr.Chatbot`'s format: `{"role", "content"}` with text and file parts."""
    out: list[dict[str, Any]] = []
    for message in conv.messages:
        if message.role == "user":
            content: list[Any] = [media_part(item, media_path) for item in message.media]
            if message.text or not content:
                content.append(message.text)
            out.append({"role": "user", "content": content})
        else:
            out.append({"role": "assistant", "content": _answer_text(message)})
    return out


def _escaped(name: str) -> str:
    """A file name as literal Markdown text."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", name)


def pending_message(text: str, attachments: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The user's message while its attachments are read: a line per attachment, `(name, how far it is)`
    (for example `("clip.mp4", "decoding frame 12/32")`), then the text."""
    lines = [f"*Processing {_escaped(name)} … {status}*" for name, status in attachments]
    content: list[Any] = ["\n\n".join(lines)] if lines else []
    if text:
        content.append(text)
    return {"role": "user", "content": content}
