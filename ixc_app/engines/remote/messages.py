"""From a `Request` to the `/v1/chat/completions` body that makes LMDeploy 0.7.3 render exactly our prompt.

The prompt is laid out by our own template (`ixc.template.layout`: cleaning, the lone-image rule, image
numbering, crop budgets), then packed as the wire conventions of `engines.wire` say:

- the system turn's text as a system message; without a meta instruction an empty one, because LMDeploy's
  template writes its default system turn whenever the first message is not a system message (LMDeploy then
  renders an empty system turn where we render none; our own server renders none);
- every turn folded into one user message, with `<IMAGE_TOKEN>` where the template put each image, except a
  lone image placed first, which LMDeploy places first itself; one `image_url` part per image, a `data:` PNG
  of the pixels our image reader gives (orientation applied, transparency on white: what the native engine
  sees), with the crop budget as `hd_num` (a video strip gets its own crop count, for which LMDeploy's HD
  transform leaves it unchanged);
- the assistant prefill as a trailing assistant message: LMDeploy's template then ends the prompt inside it,
  so the prefill is honoured exactly, not emulated. The server streams only what follows it.

A literal `<IMAGE_TOKEN>` typed in a message is removed first: LMDeploy would take it for an image slot.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from ixc_app.engines.base import ImageReader, Request
from ixc_app.engines.wire import IMAGE_TOKEN, model_id
from ixc_app.ixc.prompt import ImageSegment
from ixc_app.ixc.template import layout
from ixc_app.ixc.tokenizer import TURN_END, TURN_START

_SYSTEM_HEAD, _USER_HEAD, _ANSWER_HEAD = (f"{TURN_START}{role}\n" for role in ("system", "user", "assistant"))
_TURN_TAIL = f"{TURN_END}\n"
DATA_URL_CACHE_BYTES = 64 * 1024**2


class DataUrls:
    """`data:` PNG URLs of images by content key, the most recent kept up to a byte budget.

    Every request repeats the whole history (the server keeps nothing between requests), so the images of a
    conversation are encoded once, not once per turn.
    """

    def __init__(self, read_image: ImageReader, budget_bytes: int = DATA_URL_CACHE_BYTES) -> None:
        self.read_image = read_image
        self.budget_bytes = budget_bytes
        self._urls: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, segment: ImageSegment) -> str:
        key = segment.image.key
        with self._lock:
            if key in self._urls:
                self._urls.move_to_end(key)
                return self._urls[key]
        out = io.BytesIO()
        self.read_image(segment.image.path).save(out, format="PNG", compress_level=1)
        url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
        with self._lock:
            self._urls[key] = url
            while sum(len(u) for u in self._urls.values()) > self.budget_bytes and len(self._urls) > 1:
                self._urls.popitem(last=False)
        return url


def chat_body(request: Request, model: str, data_url: DataUrls, *, stream: bool = True) -> dict[str, Any]:
    """The JSON body answering `request` with the model id of its mode (`model` is the base id)."""
    params = request.params
    body: dict[str, Any] = {
        "model": model_id(model, request.mode),
        "messages": chat_messages(request, data_url),
        "stream": stream,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        # LMDeploy always samples; keeping only the most likely token is its greedy decoding.
        "top_k": params.top_k if params.do_sample else 1,
        "repetition_penalty": params.repetition_penalty,
        "skip_special_tokens": True,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.stop:
        body["stop"] = list(request.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    return body


def chat_messages(request: Request, data_url: DataUrls) -> list[dict[str, Any]]:
    turns = tuple(replace(turn, text=_without_image_tokens(turn.text)) for turn in request.turns)
    blocks = list(
        layout(
            turns,
            meta_instruction=request.meta_instruction,
            prefill=request.prefill,
            hd_num_single=request.hd_num_single,
            hd_num_multi=request.hd_num_multi,
            first_image=request.first_image,
        )
    )
    answer = _between(_only_text(blocks.pop().parts), _ANSWER_HEAD, "")
    images: list[ImageSegment] = []
    if blocks and len(blocks[0].parts) == 1 and isinstance(blocks[0].parts[0], ImageSegment):
        images.append(blocks.pop(0).parts[0])
    system = ""
    if blocks and blocks[0].turn is None:
        system = _between(_only_text(blocks.pop(0).parts), _SYSTEM_HEAD, _TURN_TAIL)
    parts = [part for block in blocks for part in block.parts]
    images += [part for part in parts if isinstance(part, ImageSegment)]
    text = _between(
        "".join(IMAGE_TOKEN if isinstance(p, ImageSegment) else p for p in parts), _USER_HEAD, _TURN_TAIL
    )
    content: str | list[dict[str, Any]] = text
    if images:
        content = [{"type": "text", "text": text}] + [
            {"type": "image_url", "image_url": {"url": data_url(image), "hd_num": _hd_num(image)}}
            for image in images
        ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": content},
    ]
    if answer:
        messages.append({"role": "assistant", "content": answer})
    return messages


def _hd_num(segment: ImageSegment) -> int:
    """The crop budget to send: a video strip's own crop count, for which the HD transform is the identity."""
    rows, cols = segment.grid
    return rows * cols if segment.image.is_video else segment.hd_num


def _without_image_tokens(text: str) -> str:
    while IMAGE_TOKEN in text:
        text = text.replace(IMAGE_TOKEN, "")
    return text


def _only_text(parts: tuple[str | ImageSegment, ...]) -> str:
    if not all(isinstance(part, str) for part in parts):
        raise ValueError("an image slot outside the user turns: the template changed its layout")
    return "".join(parts)  # type: ignore[arg-type]


def _between(text: str, head: str, tail: str) -> str:
    """`text` without `head` and `tail`, which the template always writes around it."""
    if not text.startswith(head) or not text.endswith(tail):
        raise ValueError(f"the template's turn {text[:40]!r} does not read {head!r}...{tail!r}")
    return text[len(head) : len(text) - len(tail)]
