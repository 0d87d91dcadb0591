"""The conversation as `gr.Chatbot` messages, as plain dicts (this module does not import gradio).

Exactly one Chatbot message per conversation message, in order, so the index Gradio reports for like, edit,
retry and undo events is the index into `Conversation.messages`. A user message shows its media first, inline,
then its text. Browsers play only MP4/H.264 and WebM; any other video is shown as its poster frame.

Each image and video is labelled with the name the model reads for it, "Image 2 · name.jpg"
(`request.image_numbers`), or only its file name where the model reads no number (a conversation's only
image, which the prompt places first unnumbered). The label is the media part's own caption (an image or
video component part with a `label`, which `assets/style.css` sets above the picture, and its `alt_text`),
never a text part: Gradio's edit box edits every text part of a message, so only the user's words are in it.

A last answer with several versions carries them as the message's `options` ("‹", "2/3", "›"), which
Gradio shows as buttons under the last message only and reports through `option_select` with the option's
value (its index there is the option's, not the message's): each value is the version that button shows.
No buttons while the answer is written, since it cannot be switched away from then.

While a message's attachments are being read it shows as a pending message after the conversation's own:
display only, since it is not in the conversation until every file is stored.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from typing import Any

from ixc_app.chat.conversation import Conversation, MediaItem, Message
from ixc_app.chat.request import MediaPath, image_numbers
from ixc_app.i18n import tr


def finish_note(finish: str | None) -> str | None:
    """The note under an answer that ended otherwise than by finishing (None for the others)."""
    if finish == "cancelled":
        return tr("*(stopped)*")
    if finish == "length":
        return tr("*(the answer reached the maximum length)*")
    if finish == "interrupted":
        return tr(
            "*(interrupted: the server stopped while writing this answer; press Retry to answer it again)*"
        )
    return None


def label(item: MediaItem, number: int | None) -> str:
    """What the chat calls a media item: the model's name for it with the file's, or the file's alone."""
    return item.name if number is None else tr("Image {number} · {name}", number=number, name=item.name)


def _media(path: str, mime: str, name: str, caption: str) -> dict[str, Any]:
    """An image or video component part captioned `caption`, its MIME type given so display does not depend
    on the stored file's extension."""
    return {
        "type": "component",
        "component": "video" if mime.startswith("video/") else "image",
        "value": {"path": path, "mime_type": mime, "orig_name": name, "meta": {"_type": "gradio.FileData"}},
        "constructor_args": {},
        "props": {"label": caption, "alt_text": caption},
    }


def media_part(item: MediaItem, media_path: MediaPath, number: int | None) -> dict[str, Any]:
    caption = label(item, number)
    if item.kind == "video" and not item.playable and item.poster_key:
        path = str(media_path(item.poster_key))
        mime = mimetypes.guess_type(path)[0] or "image/png"
        poster = tr("{caption} (video; this format plays only after download)", caption=caption)
        return _media(path, mime, item.name, poster)
    return _media(str(media_path(item.key)), item.mime, item.name, caption)


def _answer_text(message: Message) -> str:
    notes = []
    if message.error:
        notes.append(tr("**Error:** {error}", error=message.error))
    elif (note := finish_note(message.finish)) is not None:
        notes.append(note)
    if message.stats and message.stats.dropped_messages:
        n = message.stats.dropped_messages
        notes.append(tr("*({n} earlier messages were left out to fit the context budget.)*", n=n))
    return "\n\n".join([message.text, *notes]) if message.text else "\n\n".join(notes)


def version_options(message: Message) -> list[dict[str, str]]:
    """The buttons that switch an answer's versions: previous, this one (which changes nothing) and next,
    wrapping around, so there are always three in the same places."""
    count = len(message.versions) + 1
    if count == 1 or message.finish is None:
        return []
    shown = message.version
    return [
        {"value": str((shown - 1) % count), "label": "‹"},
        {"value": str(shown), "label": f"{shown + 1}/{count}"},
        {"value": str((shown + 1) % count), "label": "›"},
    ]


def to_chatbot(conv: Conversation, media_path: MediaPath) -> list[dict[str, Any]]:
    """Messages in `gr.Chatbot`'s format: `{"role", "content"}` with text and media parts, and the version
    buttons of the last answer (`version_options`)."""
    out: list[dict[str, Any]] = []
    for message, numbers in zip(conv.messages, image_numbers(conv.messages), strict=True):
        if message.role == "user":
            media = zip(message.media, numbers, strict=True)
            content: list[Any] = [media_part(item, media_path, number) for item, number in media]
            if message.text or not content:
                content.append(message.text)
            out.append({"role": "user", "content": content})
        else:
            out.append({"role": "assistant", "content": _answer_text(message)})
    if conv.messages and (options := version_options(conv.messages[-1])):
        out[-1]["options"] = options
    return out


def _escaped(name: str) -> str:
    """A file name as literal Markdown text."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", name)


def pending_message(text: str, attachments: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The user's message while its attachments are read: a line per attachment, `(name, how far it is)`
    (for example `("clip.mp4", "decoding frame 12/32")`), then the text."""
    lines = [
        tr("*Processing {name} … {status}*", name=_escaped(name), status=status)
        for name, status in attachments
    ]
    content: list[Any] = ["\n\n".join(lines)] if lines else []
    if text:
        content.append(text)
    return {"role": "user", "content": content}
