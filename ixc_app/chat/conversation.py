"""The canonical conversation: what the user said and showed, what the model answered, with which settings.

Everything is a frozen, JSON-serialisable dataclass and every operation returns a new conversation, so the UI
can hold one in state, the store can persist it as JSON, and a failed or cancelled step never leaves half an
edit.
Media are referenced by their content key in the media store, never held as pixels or paths.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ixc_app.engines.base import Finished, GenerationParams
from ixc_app.i18n import LANGUAGES, speaking, tr

Role = Literal["user", "assistant"]
MediaKind = Literal["image", "video"]
Feedback = Literal["like", "dislike"]
ImageMode = Literal["auto", "single", "multi"]
MessageFinish = Literal["stop", "length", "cancelled", "error", "interrupted"]

DEFAULT_TITLE = "New conversation"
"""A new conversation's name in English; it is named in the language of the request that creates it
(`default_title`)."""
TITLE_CHARS = 60


def default_title() -> str:
    return tr("New conversation")


def is_default_title(title: str) -> bool:
    """The title is a new conversation's, in any language (so the first message still names it)."""
    for language in LANGUAGES:
        with speaking(language):
            if title == default_title():
                return True
    return False


class ConversationError(ValueError):
    """An operation that does not apply to the conversation as it is; one sentence for the user."""


@dataclass(frozen=True)
class MediaItem:
    """An image or a video a user attached, by its key in the media store.

    A video also names the derived images made from it at upload: `strip_key` is the labelled frame composite
    the model sees (already whole 560-pixel crops), `poster_key` a still frame the chat shows when the browser
    cannot play the video itself (`playable` False: anything but MP4/H.264 and WebM).
    """

    key: str
    kind: MediaKind
    name: str
    mime: str
    width: int
    height: int
    duration_s: float | None = None
    strip_key: str | None = None
    strip_width: int | None = None
    strip_height: int | None = None
    poster_key: str | None = None
    playable: bool = True

    @property
    def keys(self) -> tuple[str, ...]:
        """Every stored file this item needs: the original and what was derived from it."""
        return tuple(k for k in (self.key, self.strip_key, self.poster_key) if k)


@dataclass(frozen=True)
class GenerationStats:
    """How an answer was produced, from the engine's `Finished`, plus the turns the budget left out."""

    prompt_tokens: int
    generated_tokens: int
    cached_tokens: int = 0
    time_to_first_token_s: float = 0.0
    total_s: float = 0.0
    dropped_messages: int = 0


@dataclass(frozen=True)
class AnswerVersion:
    """One answer to a question that was answered more than once (Retry): what a `Message` holds of an answer
    of its own, kept so that the user can show it again (`show_version`)."""

    text: str
    finish: MessageFinish | None = None
    error: str | None = None
    stats: GenerationStats | None = None
    feedback: Feedback | None = None


@dataclass(frozen=True)
class Message:
    """One chat message. An assistant message with `finish` None is still being streamed; "interrupted" marks
    one a server crash or kill cut short (its text is what was saved before); `error` is the one-sentence
    reason an answer failed, its partial text kept.

    A retried answer keeps its other versions: `versions` are the other answers to the same question in the
    order written, `version` the place of the shown one (this message's own fields) among them all, so what
    reads a message (the model's history, the display) sees the shown version only.
    """

    role: Role
    text: str
    media: tuple[MediaItem, ...] = ()
    feedback: Feedback | None = None
    finish: MessageFinish | None = None
    error: str | None = None
    stats: GenerationStats | None = None
    versions: tuple[AnswerVersion, ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.version <= len(self.versions) or (self.versions and self.role != "assistant"):
            raise ValueError("answer versions out of place")

    @property
    def all_versions(self) -> tuple[AnswerVersion, ...]:
        """Every version of this answer in the order written, the shown one at `version`."""
        shown = AnswerVersion(**{f.name: getattr(self, f.name) for f in fields(AnswerVersion)})
        return (*self.versions[: self.version], shown, *self.versions[self.version :])


@dataclass(frozen=True)
class ChatSettings:
    """Per-conversation generation settings.

    `image_mode` chooses the crop budget: `auto` is the reference rule (`hd_num_single` when the request holds
    one image, `hd_num_multi` for each image when it holds several); `single` gives every image the single
    budget (more detail, more tokens); `multi` gives every image the multi budget, even a lone one (cheaper).
    `meta_instruction` is the user's own system prompt, sent when `use_meta` is on; None sends the model's
    official one (`chat.request.DEFAULT_META_INSTRUCTION`), so the default stays exactly the reference's.
    """

    params: GenerationParams = field(default_factory=GenerationParams)
    hd_num_single: int = 24
    hd_num_multi: int = 6
    image_mode: ImageMode = "auto"
    use_meta: bool = True
    meta_instruction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatSettings:
        """Settings saved by any version: unknown fields are ignored, missing ones take their default."""
        return cls(
            **{
                **_known(cls, data),
                "params": GenerationParams(**_known(GenerationParams, data.get("params") or {})),
            }
        )


@dataclass(frozen=True)
class Conversation:
    id: str
    owner: str
    title: str
    created: float
    updated: float
    messages: tuple[Message, ...] = ()
    settings: ChatSettings = field(default_factory=ChatSettings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (tuples become lists)."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        return cls(
            id=data["id"],
            owner=data["owner"],
            title=data["title"],
            created=data["created"],
            updated=data["updated"],
            messages=tuple(_message_from_dict(m) for m in data.get("messages", ())),
            settings=ChatSettings.from_dict(data.get("settings") or {}),
        )

    @property
    def media(self) -> tuple[MediaItem, ...]:
        return tuple(item for m in self.messages for item in m.media)

    @property
    def media_keys(self) -> frozenset[str]:
        """Every stored file the conversation refers to (originals, strips, posters)."""
        return frozenset(k for item in self.media for k in item.keys)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the fields `cls` has, so a conversation saved by an older or newer version still loads."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _stats_from_dict(stats: dict[str, Any] | None) -> GenerationStats | None:
    return GenerationStats(**_known(GenerationStats, stats)) if stats else None


def _message_from_dict(data: dict[str, Any]) -> Message:
    """A message saved by any version; one saved before answers had versions has none."""
    versions = tuple(
        AnswerVersion(**{**_known(AnswerVersion, v), "stats": _stats_from_dict(v.get("stats"))})
        for v in data.get("versions", ())
    )
    return Message(
        **{
            **_known(Message, data),
            "media": tuple(MediaItem(**_known(MediaItem, m)) for m in data.get("media", ())),
            "stats": _stats_from_dict(data.get("stats")),
            "versions": versions,
        }
    )


def new_conversation_id() -> str:
    return secrets.token_urlsafe(16)


def new_conversation(
    owner: str, settings: ChatSettings | None = None, *, now: float | None = None
) -> Conversation:
    now = time.time() if now is None else now
    return Conversation(
        id=new_conversation_id(),
        owner=owner,
        title=default_title(),
        created=now,
        updated=now,
        settings=settings or ChatSettings(),
    )


def _touch(conv: Conversation, messages: tuple[Message, ...], now: float | None) -> Conversation:
    return replace(conv, messages=messages, updated=time.time() if now is None else now)


def _title_from(text: str, media: tuple[MediaItem, ...]) -> str:
    line = " ".join(text.split())
    if line:
        return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
    if media:
        kinds = {item.kind for item in media}
        return tr("Video") if kinds == {"video"} else tr("Images") if len(media) > 1 else tr("Image")
    return default_title()


def _last_assistant(conv: Conversation) -> Message:
    if not conv.messages or conv.messages[-1].role != "assistant":
        raise ConversationError(tr("There is no answer to continue; send a message first."))
    return conv.messages[-1]


def _waiting_for_answer(conv: Conversation) -> bool:
    """The last message is an empty answer nothing was written into yet (what `retry` leaves)."""
    last = conv.messages[-1] if conv.messages else None
    return last is not None and last.role == "assistant" and last.finish is None and not last.text


def add_user_message(
    conv: Conversation, text: str, media: tuple[MediaItem, ...] = (), *, now: float | None = None
) -> Conversation:
    """Append the user's next message; the first one also names the conversation if it has no name yet."""
    if not text.strip() and not media:
        raise ConversationError(tr("The message is empty; type a question or attach an image or a video."))
    if conv.messages and (conv.messages[-1].role == "user" or _waiting_for_answer(conv)):
        raise ConversationError(tr("The previous message has no answer yet; retry it or undo it first."))
    conv = _touch(conv, (*conv.messages, Message(role="user", text=text, media=tuple(media))), now)
    if is_default_title(conv.title) and len(conv.messages) == 1:
        conv = replace(conv, title=_title_from(text, tuple(media)))
    return conv


def start_answer(conv: Conversation, *, now: float | None = None) -> Conversation:
    """The conversation with an empty assistant message to stream into: appended after the last user
    message, or the one a retry left (which carries the earlier versions)."""
    if _waiting_for_answer(conv):
        return _touch(conv, conv.messages, now)
    if not conv.messages or conv.messages[-1].role != "user":
        raise ConversationError(tr("There is no question to answer; send a message first."))
    return _touch(conv, (*conv.messages, Message(role="assistant", text="")), now)


def append_answer(conv: Conversation, text: str) -> Conversation:
    """Add streamed text to the answer being written (`updated` is bumped once, at finish)."""
    last = _last_assistant(conv)
    return replace(conv, messages=(*conv.messages[:-1], replace(last, text=last.text + text)))


def finish_answer(
    conv: Conversation, finished: Finished, *, dropped_messages: int = 0, now: float | None = None
) -> Conversation:
    last = _last_assistant(conv)
    stats = GenerationStats(
        prompt_tokens=finished.prompt_tokens,
        generated_tokens=finished.generated_tokens,
        cached_tokens=finished.cached_tokens,
        time_to_first_token_s=finished.time_to_first_token_s,
        total_s=finished.total_s,
        dropped_messages=dropped_messages,
    )
    done = replace(last, finish=finished.finish_reason, stats=stats, error=None)
    return _touch(conv, (*conv.messages[:-1], done), now)


def fail_answer(conv: Conversation, error: str, *, now: float | None = None) -> Conversation:
    """Mark the answer as failed with a one-sentence reason; its partial text stays and Retry replaces it.

    If the failure came before an answer was started (the last message is the user's), an empty failed
    answer is added so the reason shows under the question.
    """
    if conv.messages and conv.messages[-1].role == "user":
        conv = start_answer(conv, now=now)
    last = _last_assistant(conv)
    return _touch(conv, (*conv.messages[:-1], replace(last, finish="error", error=error)), now)


def undo(conv: Conversation, *, now: float | None = None) -> Conversation:
    """Drop the last user message and its answer, if any."""
    messages = conv.messages
    if messages and messages[-1].role == "assistant":
        messages = messages[:-1]
    if not messages:
        raise ConversationError(tr("There is nothing to undo."))
    return _touch(conv, messages[:-1], now)


def edit_user_message(conv: Conversation, index: int, text: str, *, now: float | None = None) -> Conversation:
    """Replace the text of user message `index` (its media stay) and drop everything after it, to rerun it."""
    if not 0 <= index < len(conv.messages) or conv.messages[index].role != "user":
        raise ConversationError(tr("Only your own messages can be edited."))
    edited = replace(conv.messages[index], text=text)
    if not text.strip() and not edited.media:
        raise ConversationError(tr("The message is empty; type a question or attach an image or a video."))
    return _touch(conv, (*conv.messages[:index], edited), now)


def set_feedback(conv: Conversation, index: int, feedback: Feedback | None) -> Conversation:
    if not 0 <= index < len(conv.messages) or conv.messages[index].role != "assistant":
        raise ConversationError(tr("Only answers can be liked or disliked."))
    messages = list(conv.messages)
    messages[index] = replace(messages[index], feedback=feedback)
    return replace(conv, messages=tuple(messages))


def rename(conv: Conversation, title: str, *, now: float | None = None) -> Conversation:
    title = " ".join(title.split())
    if not title:
        raise ConversationError(tr("A conversation needs a name; type at least one character."))
    return replace(conv, title=title[:200], updated=time.time() if now is None else now)


def with_settings(conv: Conversation, settings: ChatSettings) -> Conversation:
    return replace(conv, settings=settings)
