"""The OpenAI-compatible wire conventions our HTTP client (`engines/remote`) and server (`serve/`) share.

They follow LMDeploy 0.7.3's `/v1/chat/completions` for IXC-2.5 (spec section 6), so both kinds of node can
sit behind one `lmdeploy serve proxy`, plus what it takes for LMDeploy to render exactly our template:

- Image slots are `<IMAGE_TOKEN>` in the user text, one per `image_url` part, in order. A message with one
  image and no slot gets its image first, before the system turn; the client writes every other slot itself
  (`Image1 <IMAGE_TOKEN>; ` ...), because LMDeploy's own numbering restarts in every message and its
  single-image rule breaks on a history with one image in each of two turns.
- The history travels folded into one user message: the turns' texts joined by the literal turn markers the
  template would put between them (`fold_turns`). LMDeploy's template writes an extra newline after every
  assistant turn, which the reference does not; folding is the only way its output equals ours. Our server
  unfolds such text back into turns (`unfold_turns`); the markers cannot occur in a turn's own text, since the
  template strips them from all text.
- A trailing assistant message is the start of the answer (an assistant prefill): LMDeploy's template then
  ends the prompt inside that message, exactly as our template does with `Request.prefill`.
- Each inference mode is its own model id (`model_id`): LMDeploy serves one merged task-LoRA variant per
  server, so the write variant is a node registered as `NAME-write`, and the proxy routes by model id.
- Errors are OpenAI-style `{"object": "error", "message", "type", "code"}` bodies; our server names the
  typed engine error in `type` so the client raises the same type with the server's sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from ixc_app.engines.base import (
    BadRequest,
    ContextTooLong,
    EngineError,
    EngineUnavailable,
    Overloaded,
    RetryableError,
    TimedOut,
)
from ixc_app.ixc.tokenizer import TURN_END, TURN_START

IMAGE_TOKEN = "<IMAGE_TOKEN>"
SSE_DONE = "[DONE]"
AFTER_USER = f"{TURN_END}\n{TURN_START}assistant\n"
"""What the template writes between a user turn's text and the next answer's text."""
AFTER_ASSISTANT = f"{TURN_END}\n{TURN_START}user\n"
"""What the template writes between an answer's text and the next user turn's text."""

MODE_SUFFIXES = {"base": "", "write": "-write", "web": "-web"}

ERROR_TYPES: dict[type[EngineError], str] = {
    ContextTooLong: "context_length_exceeded",
    BadRequest: "invalid_request_error",
    EngineUnavailable: "engine_unavailable",
    Overloaded: "overloaded",
    TimedOut: "timeout",
    RetryableError: "temporary_failure",
}


def fold_turns(texts: Sequence[str]) -> str:
    """Alternating user, answer, user... texts as one user message's text (see the module docstring)."""
    out = texts[0] if texts else ""
    for index, text in enumerate(texts[1:], start=1):
        out += (AFTER_USER if index % 2 else AFTER_ASSISTANT) + text
    return out


def unfold_turns(text: str) -> list[str]:
    """The texts `fold_turns` joined, user first; a text without markers is one user turn."""
    texts: list[str] = []
    rest, joiner = text, AFTER_USER
    while joiner in rest:
        head, rest = rest.split(joiner, 1)
        texts.append(head)
        joiner = AFTER_ASSISTANT if joiner == AFTER_USER else AFTER_USER
    return [*texts, rest]


def model_id(base: str, mode: str) -> str:
    return base + MODE_SUFFIXES[mode]


def modes_served(base: str, model_ids: Sequence[str]) -> frozenset[str]:
    """The modes whose model id a server (or a proxy, over all its nodes) lists."""
    return frozenset(mode for mode in MODE_SUFFIXES if model_id(base, mode) in model_ids)


def error_type(exc: EngineError) -> str:
    """The `type` our server writes for a typed engine error (the most specific class listed)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TYPES:
            return ERROR_TYPES[cls]  # type: ignore[index]
    return "engine_error"


def error_class(type_name: str) -> type[EngineError] | None:
    """The typed error an error body's `type` names, if it is one of ours."""
    return next((cls for cls, name in ERROR_TYPES.items() if name == type_name), None)
