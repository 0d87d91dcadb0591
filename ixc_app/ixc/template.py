"""The IXC-2.5 chat template: a conversation with images and videos in, the model's exact input out.

It reproduces the reference `interleav_wrap_chat` (spec section 2): turn markers, the optional system turn,
a lone image first after BOS, several images announced as `Image{n} <ImageHere>; ` with numbering across the
conversation (`image_numbers`, which the chat's display labels its images with too), the crop budget `hd_num`
chosen by the image count, and text tokenized segment by segment between images with BOS on the first segment
only. A user turn may instead place its images itself with one `<ImageHere>` per image (the composer's prompts
do, as the reference `chat()` allows).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ixc_app.ixc.grid import CROP, hd_grid, image_token_count
from ixc_app.ixc.prompt import (
    IMAGE_PLACEHOLDER,
    ImageRef,
    ImageSegment,
    Mode,
    Prompt,
    Segment,
    TextSegment,
    Turn,
)
from ixc_app.ixc.tokenizer import TURN_END, TURN_START, Tokenizer

_SELF_INTRO = "You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔)."
_ABOUT = (
    "- InternLM-XComposer (浦语·灵笔) is a {kind} that is developed by Shanghai AI Laboratory "
    "(上海人工智能实验室). It is designed to be helpful, honest, and harmless."
)
_LANGUAGES = (
    "- InternLM-XComposer (浦语·灵笔) can understand and communicate fluently in the language chosen by the "
    "user such as English and 中文."
)
_IMAGES = (
    "- InternLM-XComposer (浦语·灵笔) is capable of comprehending and articulating responses effectively "
    "based on the provided image."
)

CHAT_META = "\n".join(
    (_SELF_INTRO, _ABOUT.format(kind="multi-modality conversational language model"), _LANGUAGES, _IMAGES)
)
# The reference `write_artical` (and the composer demo) spell this one with a trailing newline.
WRITE_META = "\n".join((_SELF_INTRO, _ABOUT.format(kind="conversational language model"), _LANGUAGES)) + "\n"

_MARKERS = (TURN_START, TURN_END)


def meta_for(mode: Mode) -> str:
    """The meta instruction the reference pairs with each mode (web pages use the chat one)."""
    return WRITE_META if mode == "write" else CHAT_META


@dataclass(frozen=True)
class Block:
    """One piece of the prompt in order: text and image slots; `turn` is the index of the turn it renders.

    The system turn and the answer header have `turn` None. A lone image placed first is a block of its own
    that still belongs to its turn, so per-turn costs (the token budget) come from the same layout.
    """

    turn: int | None
    parts: tuple[str | ImageSegment, ...]


def build_prompt(
    turns: Sequence[Turn],
    tokenizer: Tokenizer,
    *,
    meta_instruction: str | None = None,
    prefill: str = "",
    hd_num_single: int = 24,
    hd_num_multi: int = 6,
    first_image: int = 1,
) -> Prompt:
    """The prompt for answering the last (user) turn of `turns`; `prefill` starts the assistant's answer.

    No system turn when `meta_instruction` is None or empty (the reference's `use_meta=False`).
    `first_image` is the number of the first image of `turns` (see `image_numbers`).
    """
    blocks = layout(
        turns,
        meta_instruction=meta_instruction,
        prefill=prefill,
        hd_num_single=hd_num_single,
        hd_num_multi=hd_num_multi,
        first_image=first_image,
    )
    parts = [part for block in blocks for part in block.parts]
    text = "".join(part if isinstance(part, str) else IMAGE_PLACEHOLDER for part in parts)
    return Prompt(text=text, segments=_segments(parts, tokenizer))


def layout(
    turns: Sequence[Turn],
    *,
    meta_instruction: str | None = None,
    prefill: str = "",
    hd_num_single: int = 24,
    hd_num_multi: int = 6,
    first_image: int = 1,
) -> tuple[Block, ...]:
    """The prompt as blocks of text and sized image slots, before tokenization."""
    _check_roles(turns)
    images = [image for turn in turns for image in turn.images]
    hd_num = hd_num_single if len(images) == 1 else hd_num_multi
    slots = iter([_image_segment(image, image.hd_num or hd_num) for image in images])
    texts = [_safe_text(turn, index) for index, turn in enumerate(turns)]
    numbers = image_numbers(turns, first=first_image)

    blocks: list[Block] = []
    if _lone_first(texts, len(images), first_image):
        blocks.append(Block(next(i for i, turn in enumerate(turns) if turn.images), (next(slots),)))
    if meta_instruction:
        blocks.append(Block(None, (f"{TURN_START}system\n{_clean(meta_instruction)}{TURN_END}\n",)))
    for index, (turn, text, numbered) in enumerate(zip(turns, texts, numbers, strict=True)):
        text = "".join(f"Image{n} {IMAGE_PLACEHOLDER}; " for n in numbered if n is not None) + text
        body = f"{TURN_START}{turn.role}\n{text}{TURN_END}\n"
        blocks.append(Block(index, _fill_slots(body, slots)))
    blocks.append(Block(None, (f"{TURN_START}assistant\n{_clean(prefill)}",)))
    return tuple(blocks)


def image_numbers(turns: Sequence[Turn], *, first: int = 1) -> tuple[tuple[int | None, ...], ...]:
    """For each turn, the number each of its images is announced with (`Image{n} <ImageHere>; `), or None
    where the prompt shows that image without a number.

    Images are numbered in conversation order from `first`. The prompt builder writes these numbers and the
    chat labels its images with them, so the label a user reads is the name the model read. A caller that
    leaves earlier turns out passes `first` = 1 + the images of those turns: the kept images keep their
    numbers, so `image_numbers(turns[k:], first=1 + images in turns[:k])` is `image_numbers(turns)[k:]`.
    The reference never trims, so this is its numbering of the whole conversation, continued. Unnumbered:
    the conversation's only image (no earlier images, `first` 1, and no `<ImageHere>` in any text), which
    goes first after BOS as in the reference; and the images of a user turn that places them itself with
    `<ImageHere>` (they still count, so the images after them are numbered as before).
    """
    texts = [_text(turn) for turn in turns]
    lone = _lone_first(texts, sum(len(turn.images) for turn in turns), first)
    numbers: list[tuple[int | None, ...]] = []
    for turn, text in zip(turns, texts, strict=True):
        count = len(turn.images)
        shown = not lone and IMAGE_PLACEHOLDER not in text
        numbers.append(tuple(first + n if shown else None for n in range(count)))
        first += count
    return tuple(numbers)


def text_runs(parts: Sequence[str | ImageSegment]) -> list[str | ImageSegment]:
    """`parts` with adjacent text joined, always text first and last and between any two images (maybe "").

    Each text run is what the reference tokenizes in one call.
    """
    runs: list[str | ImageSegment] = [""]
    for part in parts:
        if isinstance(part, str):
            runs[-1] += part
        else:
            runs.extend((part, ""))
    return runs


def _segments(parts: Sequence[str | ImageSegment], tokenizer: Tokenizer) -> tuple[Segment, ...]:
    """The first run gets BOS and stays even when empty; later empty runs are dropped, as in the reference."""
    segments: list[Segment] = []
    for index, run in enumerate(text_runs(parts)):
        if isinstance(run, ImageSegment):
            segments.append(run)
        elif run or index == 0:
            segments.append(TextSegment(run, tuple(tokenizer.encode(run, bos=index == 0))))
    return tuple(segments)


def _check_roles(turns: Sequence[Turn]) -> None:
    if not turns or turns[-1].role != "user":
        raise ValueError("A conversation must end with the user's message to be answered.")
    for index, turn in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.role != expected:
            raise ValueError(
                f"Turn {index + 1} is from the {turn.role} but should be from the {expected}: "
                "turns must alternate, user first."
            )
        if turn.role == "assistant" and turn.images:
            raise ValueError(
                f"Turn {index + 1} is an answer with images attached: only user turns may carry images."
            )


def _safe_text(turn: Turn, index: int) -> str:
    """The turn's text made safe; for a user turn, its `<ImageHere>` count is checked against its images."""
    text = _text(turn)
    if turn.role == "assistant":
        return text
    placed = text.count(IMAGE_PLACEHOLDER)
    if placed and placed != len(turn.images):
        raise ValueError(
            f"Message {index + 1} has {placed} {IMAGE_PLACEHOLDER} marker(s) but {len(turn.images)} "
            "image(s): remove the markers or give one image per marker."
        )
    return text


def _text(turn: Turn) -> str:
    """The turn's text as the prompt writes it: no turn markers; an answer places no images either."""
    return _clean(turn.text) if turn.role == "assistant" else _strip(turn.text, _MARKERS)


def _clean(text: str) -> str:
    """Text that may hold neither turn markers nor image slots (system, answers, prefill)."""
    return _strip(text, (*_MARKERS, IMAGE_PLACEHOLDER))


def _strip(text: str, forbidden: tuple[str, ...]) -> str:
    """Remove `forbidden` strings until none is left.

    SentencePiece reads a literal `[UNUSED_TOKEN_146]` in text as the turn-start token, so typed markers would
    let a message open a forged system or assistant turn. Removal repeats because removing one occurrence can
    join its neighbours into a new one.
    """
    while any(item in text for item in forbidden):
        for item in forbidden:
            text = text.replace(item, "")
    return text


def _fill_slots(body: str, slots: Iterator[ImageSegment]) -> tuple[str | ImageSegment, ...]:
    pieces = body.split(IMAGE_PLACEHOLDER)
    parts: list[str | ImageSegment] = [pieces[0]]
    for piece in pieces[1:]:
        parts.extend((next(slots), piece))
    return tuple(part for part in parts if part != "")


def _lone_first(texts: Sequence[str], images: int, first: int) -> bool:
    """The reference places a conversation's only image first, unnumbered, unless a text places it itself."""
    return first == 1 and images == 1 and all(IMAGE_PLACEHOLDER not in text for text in texts)


def _image_segment(image: ImageRef, hd_num: int) -> ImageSegment:
    """Size one image; a video strip is already whole crops and skips the HD partition (hd_num unused)."""
    if image.is_video:
        if image.width % CROP or image.height % CROP or not image.width or not image.height:
            raise ValueError(
                f"The video strip is {image.width}x{image.height}, not whole {CROP}-pixel crops: "
                "transform the composite before building the prompt."
            )
        rows, cols = image.height // CROP, image.width // CROP
        return ImageSegment(
            image=image, hd_num=hd_num, grid=(rows, cols), num_tokens=image_token_count(rows, cols)
        )
    grid = hd_grid(image.width, image.height, hd_num)
    return ImageSegment(image=image, hd_num=hd_num, grid=(grid.rows, grid.cols), num_tokens=grid.num_tokens)
