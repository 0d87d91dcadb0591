"""The data that flows from a conversation to an engine: turns in, prompt segments out.

These are plain frozen dataclasses so that chat state, the template, the token budget and every engine agree
on one shape, and so that a prompt can be compared segment by segment (the native engine reuses a session's KV
cache up to the first segment that differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]
Mode = Literal["base", "write", "web"]

IMAGE_PLACEHOLDER = "<ImageHere>"


@dataclass(frozen=True)
class ImageRef:
    """An image as the template and engines see it.

    `key` is the content id (sha256 of the stored file) used to cache vision features; `path` is the stored,
    already validated file. A video reaches the model as its labelled composite strip, already transformed to
    whole 560-pixel crops (`is_video=True`): it is used as it is, without the HD partition. `hd_num` is a crop
    budget of this image's own (an OpenAI-style request may give one per image); None leaves it to the
    request's budgets by image count.
    """

    key: str
    path: str
    width: int
    height: int
    is_video: bool = False
    hd_num: int | None = None


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    images: tuple[ImageRef, ...] = ()


@dataclass(frozen=True)
class TextSegment:
    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class ImageSegment:
    """One image in the prompt with the crop budget it was given and the embedding count it will produce."""

    image: ImageRef
    hd_num: int
    grid: tuple[int, int]
    num_tokens: int


Segment = TextSegment | ImageSegment


@dataclass(frozen=True)
class Prompt:
    """The prompt text (with `<ImageHere>` where images go) and its segments, in order."""

    text: str
    segments: tuple[Segment, ...]

    @property
    def num_tokens(self) -> int:
        return sum(len(s.token_ids) if isinstance(s, TextSegment) else s.num_tokens for s in self.segments)

    @property
    def images(self) -> tuple[ImageSegment, ...]:
        return tuple(s for s in self.segments if isinstance(s, ImageSegment))
