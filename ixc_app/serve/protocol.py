"""The JSON our server reads and writes: LMDeploy 0.7.3's `/v1/chat/completions` fields, defaults and shapes.

Same request fields and defaults as LMDeploy's `ChatCompletionRequest` (so a client gets the same sampling
from either kind of node behind one proxy), the same stream chunk and response shapes, and OpenAI-style error
bodies `{"object": "error", "message", "type", "code"}` whose `type` names our typed error (`engines.wire`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from ixc_app.engines.base import Finished


class StreamOptions(BaseModel):
    include_usage: bool | None = False


class ResponseFormat(BaseModel):
    type: str = "text"


class ChatCompletionRequest(BaseModel):
    """LMDeploy 0.7.3's request model, field for field; what we cannot honour is refused in `inputs`."""

    model: str
    messages: str | list[dict[str, Any]] = Field(examples=[[{"role": "user", "content": "hi"}]])
    temperature: float | None = 0.7
    top_p: float | None = 1.0
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] = "auto"
    logprobs: bool | None = False
    top_logprobs: int | None = None
    n: int | None = 1
    logit_bias: dict[str, float] | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    user: str | None = None
    response_format: ResponseFormat | None = None
    repetition_penalty: float | None = 1.0
    session_id: int | None = -1
    ignore_eos: bool | None = False
    skip_special_tokens: bool | None = True
    spaces_between_special_tokens: bool | None = True
    top_k: int | None = 40
    seed: int | None = None
    min_new_tokens: int | None = None
    min_p: float = 0.0


FinishWire = Literal["stop", "length", "error"]


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(finished: Finished | None) -> dict[str, int]:
    prompt = finished.prompt_tokens if finished else 0
    completion = finished.generated_tokens if finished else 0
    return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}


def chunk(
    request_id: str,
    model: str,
    text: str,
    finish_reason: FinishWire | None = None,
    *,
    usage_info: dict[str, int] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; a failed stream's last chunk also carries the `error` object."""
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_info,
    }
    if error is not None:
        body["error"] = error
    return body


def completion(request_id: str, model: str, text: str, finished: Finished | None) -> dict[str, Any]:
    reason = finished.finish_reason if finished else "stop"
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "reasoning_content": None,
                    "tool_calls": None,
                },
                "logprobs": None,
                "finish_reason": "length" if reason == "length" else "stop",
            }
        ],
        "usage": usage(finished),
    }


def error_body(message: str, type_name: str, code: int) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_name, "code": code, "param": None}


def model_list(model_ids: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """LMDeploy's `ModelList`; each card also says what our server knows of itself under `ixc_studio`."""
    created = int(time.time())
    cards = [
        {
            "id": model_id,
            "object": "model",
            "created": created,
            "owned_by": "ixc-studio",
            "root": model_id,
            "parent": None,
            "permission": [],
            "ixc_studio": extra,
        }
        for model_id in model_ids
    ]
    return {"object": "list", "data": cards}
