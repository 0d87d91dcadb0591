"""From a conversation to the engine request that answers its last user message, within the token budget.

The conversation keeps every turn; only the request is trimmed. When the whole history does not fit the
context budget (prompt plus the answer's reserved tokens), the oldest user+answer pairs are left out (down
to `TRIM_TO` of the budget, so that the following turns keep the same start) and the caller learns how many
messages that was, so the UI can say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ixc_app.chat.conversation import ChatSettings, Conversation, ConversationError, MediaItem, Message
from ixc_app.engines.base import Request
from ixc_app.i18n import tr
from ixc_app.ixc.budget import ContextBudgetExceeded, fit_to_context
from ixc_app.ixc.prompt import ImageRef, Turn
from ixc_app.ixc.template import CHAT_META
from ixc_app.ixc.template import image_numbers as template_image_numbers
from ixc_app.ixc.tokenizer import Tokenizer

MediaPath = Callable[[str], Path | str]
"""Where the media store keeps the file of a key (`MediaStore.path`)."""

DEFAULT_META_INSTRUCTION = CHAT_META
"""The model's official chat system prompt, what a conversation sends unless its user wrote their own."""

TRIM_TO = 0.75
"""When old turns must go, the prompt is cut to this share of the room, so the next turns keep the same
start and reuse the engine's cached prefix (see `fit_to_context`)."""


__all__ = [
    "DEFAULT_META_INSTRUCTION",
    "ContextBudgetExceeded",
    "MediaPath",
    "PreparedRequest",
    "custom_meta_instruction",
    "hd_nums",
    "image_numbers",
    "image_ref",
    "meta_instruction",
    "to_request",
]


@dataclass(frozen=True)
class PreparedRequest:
    """The request to send, how many of the oldest messages it leaves out, and its prompt size in tokens."""

    request: Request
    dropped_messages: int
    prompt_tokens: int


def image_ref(item: MediaItem, media_path: MediaPath) -> ImageRef:
    """What the model sees of a media item: the image itself, or a video's composite strip."""
    if item.kind == "video":
        if not (item.strip_key and item.strip_width and item.strip_height):
            raise ConversationError(
                tr("The video '{name}' has no frame strip; attach it again.", name=item.name)
            )
        return ImageRef(
            key=item.strip_key,
            path=str(media_path(item.strip_key)),
            width=item.strip_width,
            height=item.strip_height,
            is_video=True,
        )
    return ImageRef(key=item.key, path=str(media_path(item.key)), width=item.width, height=item.height)


def to_turns(messages: Sequence[Message], ref: Callable[[MediaItem], ImageRef]) -> tuple[Turn, ...]:
    """The messages as template turns, each media item seen through `ref`."""
    return tuple(Turn(m.role, m.text, tuple(ref(item) for item in m.media)) for m in messages)


def image_numbers(messages: Sequence[Message]) -> tuple[tuple[int | None, ...], ...]:
    """For each message, the number the model reads for each of its media items, None where it reads none.

    The template's own numbering (`ixc.template.image_numbers`) of the turns `to_request` makes of these
    messages, so the chat's labels and the prompt agree by construction. Numbers stay those of the whole
    conversation when the budget leaves old turns out (`fit_to_context` passes the kept turns' first
    number), rather than restarting from 1 in what is kept: a label never changes under the user, and words
    they wrote earlier ("compare Image 2 and Image 5") keep meaning the same images. Only counts and texts
    matter here, so items are counted without their files (a video needs no strip to be numbered).
    """
    return template_image_numbers(to_turns(messages, _counted))


def _counted(item: MediaItem) -> ImageRef:
    return ImageRef(item.key, path="", width=item.width, height=item.height, is_video=item.kind == "video")


def hd_nums(settings: ChatSettings) -> tuple[int, int]:
    """(single, multi) crop budgets for the template, which picks by image count; see `ChatSettings`."""
    if settings.image_mode == "single":
        return settings.hd_num_single, settings.hd_num_single
    if settings.image_mode == "multi":
        return settings.hd_num_multi, settings.hd_num_multi
    return settings.hd_num_single, settings.hd_num_multi


def custom_meta_instruction(text: str) -> str | None:
    """What to keep of a system prompt the user typed: None for the official one or a blank box (the
    official one is then sent byte for byte, whatever a browser did to its line ends)."""
    text = text.replace("\r\n", "\n")
    return None if not text.strip() or text == DEFAULT_META_INSTRUCTION else text


def meta_instruction(settings: ChatSettings) -> str | None:
    """The system turn's text for these settings, None for no system turn."""
    if not settings.use_meta:
        return None
    return settings.meta_instruction or DEFAULT_META_INSTRUCTION


def to_request(
    conv: Conversation,
    tokenizer: Tokenizer,
    media_path: MediaPath,
    *,
    context_budget: int,
    max_new_tokens_cap: int | None = None,
) -> PreparedRequest:
    """The request answering the conversation's last user message.

    An empty, unfinished answer after it (the one about to be streamed into) is ignored. `max_new_tokens` is
    capped by `max_new_tokens_cap` and reserved in the budget. Raises `ContextBudgetExceeded` when the last
    message alone does not fit.
    """
    messages = conv.messages
    if (
        messages
        and messages[-1].role == "assistant"
        and messages[-1].finish is None
        and not messages[-1].text
    ):
        messages = messages[:-1]
    if not messages or messages[-1].role != "user":
        raise ConversationError(tr("There is no question to answer; send a message first."))
    settings = conv.settings
    params = settings.params
    if max_new_tokens_cap is not None and params.max_new_tokens > max_new_tokens_cap:
        params = replace(params, max_new_tokens=max_new_tokens_cap)
    meta = meta_instruction(settings)
    single, multi = hd_nums(settings)
    try:
        plan = fit_to_context(
            to_turns(messages, lambda item: image_ref(item, media_path)),
            tokenizer,
            context_limit=context_budget,
            max_new_tokens=params.max_new_tokens,
            meta_instruction=meta,
            hd_num_single=single,
            hd_num_multi=multi,
            trim_to=TRIM_TO,
        )
    except ContextBudgetExceeded as exc:
        exc.args = (budget_refusal(exc),)
        raise
    request = Request(
        turns=plan.turns,
        params=params,
        meta_instruction=meta,
        hd_num_single=single,
        hd_num_multi=multi,
        first_image=plan.first_image,
    )
    return PreparedRequest(
        request=request, dropped_messages=plan.dropped, prompt_tokens=plan.prompt.num_tokens
    )


def budget_refusal(exc: ContextBudgetExceeded) -> str:
    """The refusal's sentence in the language of the request (`ixc.budget` may not import the app, so its
    own message is English: this is the same sentence)."""
    return tr(
        "This message needs {needed} tokens ({image_tokens} of them for images) plus {reserved} reserved for "
        "the answer, more than the context limit of {limit}: attach fewer images, lower the image detail "
        "(hd_num), shorten the text or lower the maximum answer length.",
        needed=exc.needed,
        image_tokens=exc.image_tokens,
        reserved=exc.reserved,
        limit=exc.limit,
    )
