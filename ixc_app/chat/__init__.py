"""The chat's canonical state and the conversions around it: pure Python, no gradio, no torch of its own.

Public API (import from `ixc_app.chat`):

State (frozen dataclasses, JSON round trip with `Conversation.to_dict()` / `Conversation.from_dict(d)`):
- `Conversation(id, owner, title, created, updated, messages, settings)`; properties `media`, `media_keys`.
- `Message(role, text, media, feedback, finish, error, stats, versions, version)`: `finish` None while an
  answer streams, else "stop" | "length" | "cancelled" | "error" | "interrupted"; `error` is the one-sentence
  reason an answer failed; a retried answer's other versions are `versions` (`AnswerVersion(text, finish,
  error, stats, feedback)`, in the order written), the shown one's place among them all is `version`.
- `MediaItem(key, kind, name, mime, width, height, duration_s, strip_key, strip_width, strip_height,
  poster_key, playable)`: an image, or a video with its derived frame strip and poster.
- `GenerationStats(prompt_tokens, generated_tokens, cached_tokens, time_to_first_token_s, total_s,
  dropped_messages)`.
- `ChatSettings(params: GenerationParams, hd_num_single, hd_num_multi, image_mode, use_meta,
  meta_instruction)`; `image_mode` "auto" | "single" | "multi" (see its docstring); `meta_instruction` None
  is the official system prompt (`chat.request.DEFAULT_META_INSTRUCTION`).
- `chat.preferences.Preferences`: each owner's last settings, what their new conversations start from.

Operations (each returns a new Conversation; `ConversationError` carries a one-sentence message):
`new_conversation(owner, settings=None)`, `add_user_message(conv, text, media=())`, `start_answer(conv)`,
`append_answer(conv, text)`, `finish_answer(conv, finished, dropped_messages=0)`, `fail_answer(conv, error)`,
`retry(conv)` (keeps the answer as a version, at most `MAX_VERSIONS`), `show_version(conv, version)` (of
the last answer), `put_back_waiting(conv)` (a retry whose answer never started),
`undo(conv)`, `edit_user_message(conv, index, text)`, `set_feedback(conv, index, feedback)`,
`rename(conv, title)`, `with_settings(conv, settings)`.

Conversions:
- `to_request(conv, tokenizer, media_path, *, context_budget, max_new_tokens_cap=None)
  -> PreparedRequest(request, dropped_messages, prompt_tokens)`; raises `ContextBudgetExceeded` (one
  sentence: what to cut).
- `to_chatbot(conv, media_path) -> list[{"role", "content"}]`: one Chatbot message per conversation message,
  each image and video captioned "Image n · name" with the number the model reads for it
  (`chat.request.image_numbers(messages)`, the template's numbering; kept when old turns are trimmed); the
  last answer's versions as its `options`.
- `media_path` is any `key -> path` function, normally `store.media.path`.

Media:
- `ingest_upload(media: MediaStore, path, limits: config.Limits, *, name=None, progress=None, added=None)
  -> MediaItem`: validate an uploaded file once, store it, and for a video build and store its frame strip
  (and, for a video browsers cannot play, a poster); `progress(fraction, step)` hears each step and each
  decoded frame and may raise to give up; keys stored anew are appended to `added`. Rejections raise
  `MediaRejected` (from `ixc_app.media`).
- `media_limits(limits) -> MediaLimits`: the media store's view of the app's limits.
"""

from ixc_app.chat.conversation import (
    DEFAULT_TITLE,
    AnswerVersion,
    ChatSettings,
    Conversation,
    ConversationError,
    Feedback,
    GenerationStats,
    ImageMode,
    MediaItem,
    Message,
    add_user_message,
    append_answer,
    edit_user_message,
    fail_answer,
    finish_answer,
    new_conversation,
    rename,
    set_feedback,
    start_answer,
    undo,
    with_settings,
)
from ixc_app.chat.display import to_chatbot
from ixc_app.chat.ingest import ingest_upload, media_limits
from ixc_app.chat.request import ContextBudgetExceeded, MediaPath, PreparedRequest, hd_nums, to_request
from ixc_app.chat.versions import MAX_VERSIONS, put_back_waiting, retry, show_version

__all__ = [
    "DEFAULT_TITLE",
    "MAX_VERSIONS",
    "AnswerVersion",
    "ChatSettings",
    "ContextBudgetExceeded",
    "Conversation",
    "ConversationError",
    "Feedback",
    "GenerationStats",
    "ImageMode",
    "MediaItem",
    "MediaPath",
    "Message",
    "PreparedRequest",
    "add_user_message",
    "append_answer",
    "edit_user_message",
    "fail_answer",
    "finish_answer",
    "hd_nums",
    "ingest_upload",
    "media_limits",
    "new_conversation",
    "put_back_waiting",
    "rename",
    "retry",
    "set_feedback",
    "show_version",
    "start_answer",
    "to_chatbot",
    "to_request",
    "undo",
    "with_settings",
]
