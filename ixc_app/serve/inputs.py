"""From an OpenAI-style chat request to the engine's `Request`: messages to turns, `data:` URLs to images.

Messages are read as LMDeploy 0.7.3 reads them, with the reference's turn format (`engines.wire`):

- a first system message is the meta instruction (an empty one means none); no system message means the
  model's default one, as with LMDeploy;
- user text may hold `<IMAGE_TOKEN>` slots, one per image part in order; without any, the template places
  the images itself (a lone image first; several as `Image1 <ImageHere>; ...`, numbered across the
  conversation, where LMDeploy would restart in every message);
- a user message may carry folded history (`unfold_turns`);
- a trailing assistant message is the start of the answer (the prefill).

Images must be `data:` URLs: this server never fetches an http(s) URL nor reads a path on its own disk. Each
is written to the request's own folder, validated exactly like an upload, and removed when the answer ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ixc_app.chat.ingest import media_limits
from ixc_app.config import Limits
from ixc_app.engines.base import BadRequest, GenerationParams, Request
from ixc_app.engines.wire import IMAGE_TOKEN, unfold_turns
from ixc_app.ixc.prompt import IMAGE_PLACEHOLDER, ImageRef, Turn
from ixc_app.media import MediaRejected, inspect_media
from ixc_app.serve.protocol import ChatCompletionRequest

_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,"
)


@dataclass(frozen=True)
class Defaults:
    """What the server fills in: the default meta instruction, crop budgets, limits."""

    meta_instruction: str
    hd_num_single: int
    hd_num_multi: int
    limits: Limits


def to_request(body: ChatCompletionRequest, mode: str, folder: Path, defaults: Defaults) -> Request:
    """The engine request, or `BadRequest`/`MediaRejected` saying what to change."""
    _refuse_unsupported(body)
    if isinstance(body.messages, str):
        raise BadRequest("messages must be a list of chat messages; this server takes no raw prompt string.")
    messages = list(body.messages)
    meta: str | None = defaults.meta_instruction
    first = 1
    if messages and messages[0].get("role") == "system":
        meta, first = _text(messages.pop(0), 1) or None, 2
    prefill = ""
    if messages and messages[-1].get("role") == "assistant":
        prefill = _text(messages.pop(), len(body.messages))
    images = _Images(folder, defaults.limits)
    turns: list[Turn] = []
    for index, message in enumerate(messages, start=first):
        turns += _turns(message, index, images)
    return Request(
        turns=tuple(turns),
        params=_params(body, defaults.limits),
        mode=mode,  # type: ignore[arg-type]
        meta_instruction=meta,
        prefill=prefill,
        stop=(body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ()),
        hd_num_single=defaults.hd_num_single,
        hd_num_multi=defaults.hd_num_multi,
    )


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    if body.n not in (None, 1):
        raise BadRequest(f"n={body.n} asks for several answers, but this server gives one; send n=1.")
    if body.tools and body.tool_choice != "none":
        raise BadRequest("This server has no tool calling; send the request without tools.")
    if body.response_format is not None and body.response_format.type != "text":
        raise BadRequest("This server only writes plain text; send the request without response_format.")
    if body.top_p is not None and not 0 < body.top_p <= 1:
        raise BadRequest(f"top_p {body.top_p} is not in (0, 1]; send a value in that range.")
    if body.top_k is not None and body.top_k < 0:
        raise BadRequest(f"top_k {body.top_k} is negative; send 0 (no top-k) or more.")
    if body.temperature is not None and not 0 <= body.temperature <= 2:
        raise BadRequest(f"temperature {body.temperature} is not in [0, 2]; send a value in that range.")
    if body.max_tokens is not None and body.max_tokens < 1:
        raise BadRequest(f"max_tokens {body.max_tokens} asks for no answer; send at least 1.")


def _params(body: ChatCompletionRequest, limits: Limits) -> GenerationParams:
    """LMDeploy's sampling fields as ours; temperature 0 is greedy decoding."""
    temperature = 0.7 if body.temperature is None else body.temperature
    return GenerationParams(
        max_new_tokens=min(body.max_tokens or limits.max_new_tokens, limits.max_new_tokens),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=40 if body.top_k is None else body.top_k,
        repetition_penalty=1.0 if body.repetition_penalty is None else body.repetition_penalty,
        seed=body.seed,
    )


def _turns(message: dict[str, Any], index: int, images: _Images) -> list[Turn]:
    role = message.get("role")
    if role == "assistant":
        return [Turn("assistant", _text(message, index))]
    if role != "user":
        raise BadRequest(
            f"Message {index} has the role {role!r}; after an optional first system message, send only "
            "user and assistant messages."
        )
    parts = _parts(message, index)
    text = "".join(part["text"] for part in parts if part.get("type") == "text")
    refs = [images.add(part, index) for part in parts if part.get("type") == "image_url"]
    texts = unfold_turns(_strip(text, IMAGE_PLACEHOLDER))
    if len(texts) % 2 == 0:
        raise BadRequest(
            f"Message {index} ends with an answer in its folded history; end it with the user's text."
        )
    slots = [t.count(IMAGE_TOKEN) for t in texts[::2]]
    if sum(slots) not in (0, len(refs)):
        raise BadRequest(
            f"Message {index} has {sum(slots)} {IMAGE_TOKEN} slot(s) but {len(refs)} image(s); give one "
            "image per slot, or no slots at all."
        )
    shares = slots if sum(slots) else [len(refs)] + [0] * (len(slots) - 1)
    turns, taken = [], 0
    for position, piece in enumerate(texts):
        if position % 2:
            turns.append(Turn("assistant", piece))
            continue
        count = shares[position // 2]
        own = tuple(refs[taken : taken + count])
        taken += count
        turns.append(Turn("user", piece.replace(IMAGE_TOKEN, IMAGE_PLACEHOLDER), own))
    return turns


def _parts(message: dict[str, Any], index: int) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        for part in content:
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind == "image_url" and isinstance(part.get("image_url"), dict):
                continue
            raise BadRequest(
                f"Message {index} has a content part of type {kind!r} this server cannot read; send text and "
                "image_url parts."
            )
        return content
    raise BadRequest(f"Message {index} has no readable content; send a string or a list of content parts.")


def _text(message: dict[str, Any], index: int) -> str:
    parts = _parts(message, index)
    if any(part.get("type") != "text" for part in parts):
        raise BadRequest(
            f"Message {index} is a system or assistant message with an image; only users send images."
        )
    return "".join(part["text"] for part in parts)


def _strip(text: str, item: str) -> str:
    while item in text:
        text = text.replace(item, "")
    return text


class _Images:
    """The request's images as validated files in its folder."""

    def __init__(self, folder: Path, limits: Limits) -> None:
        self.folder = folder
        self.limits = media_limits(limits)
        self.count = 0

    def add(self, part: dict[str, Any], index: int) -> ImageRef:
        spec = part["image_url"]
        url = spec.get("url")
        if not isinstance(url, str) or not (match := _DATA_URL.match(url)):
            raise BadRequest(
                f"An image of message {index} is not a data: URL; send images as base64 data: URLs (this "
                "server never fetches URLs or reads its own files)."
            )
        if not match.group("b64"):
            raise BadRequest(
                f"An image of message {index} is a data: URL without ;base64; encode it in base64."
            )
        payload = url[match.end() :]
        if len(payload) * 3 // 4 > self.limits.max_image_bytes:
            raise BadRequest(
                f"An image of message {index} is over the {self.limits.max_image_bytes // 1024**2} MB upload "
                "limit; send a smaller image."
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"An image of message {index} is not valid base64; encode it again.") from exc
        self.count += 1
        name = f"image {self.count}"
        path = self.folder / f"image-{self.count}"
        path.write_bytes(data)
        info = inspect_media(path, name, self.limits)
        if info.kind != "image":
            raise MediaRejected(
                name,
                f"'{name}' is a video; send a video as the image of its frame strip (the app builds one).",
            )
        return ImageRef(
            key=hashlib.sha256(data).hexdigest(),
            path=str(path),
            width=info.width,
            height=info.height,
            hd_num=_hd_num(spec.get("hd_num"), index),
        )


def _hd_num(value: Any, index: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"An image of message {index} has hd_num {value!r}; send a positive whole number.")
    return value
