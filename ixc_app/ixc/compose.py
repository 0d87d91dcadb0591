"""The composer's trained prompt formats (spec section 5), character for character, as pure functions.

IXC-2.5 was tuned on these Chinese scaffolds, so they are reproduced exactly as the official composition
demo writes them: `<Seg{i}> ` indexed paragraphs, the slot question with its assistant prefill, the caption
question with the `past` chain of earlier captions inside the 2.5 demo's one-shot example, the selection
question with lettered candidates, and the paragraph edits. Images are `<ImageHere>` placeholders the chat
template fills. Each function returns only the user text (and the prefill or system text where the format
has one); the chat template adds the turn markers. The answers are read back by `ixc.compose_parse`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from ixc_app.ixc.prompt import IMAGE_PLACEHOLDER

MAX_PARAGRAPHS = 60
"""The official demo keeps at most 60 paragraphs of a draft."""

OUTLINE_PREFIX = "请列出下面的作文题目对应的写作大纲。\n**题目：**\n"
SLOT_PREFILL = "适合插入图像的行是"
CAPTION_PREFILL = '标题是"'
CAPTION_SYSTEM = (
    "请严格按照示例的<input> <output>格式，根据给定的文章，给出适合在某一段后插入的图像对应的标题。"
)
CAPTION_EXAMPLE = (
    '<input>\n给定文章"<Seg0> 大多数的车友们在选车、购车时都会格外关注续航\n'
    "<Seg1> 甚至还有要求电动滑板车跑一百公里的\n"
    "<Seg2> 但这真的是你所需要的吗?\n"
    "<Seg3> 据报告，一线城市上班族通勤半径均在10公里以内\n"
    "<Seg4> 所以大多数通勤出行RND的续航完全可以满足\n"
    "<Seg5> 可能会有人说，续航短导致一天一充或两充很麻烦\n"
    '" 给出适合在<Seg4>后插入的图像对应的标题。</input>\n'
    '<output>\n标题是"一个人正站在充电桩前给电动滑板车充电，面容看上去有些疲惫"</output>\n'
)
"""The 2.5 demo's one-shot example, sent before every caption question."""
CAPTION_STOP = ('"', "”")
SELECTION_PREFILL = "最合适的图是"
LIBRARY_CAPTION_PROMPT = "请分别用一句中文和一句英文描述这张图片的内容。"
"""Our own (untrained) question for captioning a library image: both languages, so that Chinese and English
slot captions both find it."""

ModelEdit = Literal["rewrite", "expand", "shorten", "insert_before", "insert_after"]
MODEL_EDITS: tuple[ModelEdit, ...] = ("rewrite", "expand", "shorten", "insert_before", "insert_after")


def images_first(text: str, n_images: int) -> str:
    """Reference images before the text, as the demo writes them (`<image> ` each, stripped, then text)."""
    return (f"{IMAGE_PLACEHOLDER} " * n_images).strip() + text


def with_target_length(instruction: str, target_chars: int | None) -> str:
    """The instruction with the length requirement in the form the demo's example instruction states it."""
    if not target_chars:
        return instruction
    return f"{instruction}\n要求：不少于 {target_chars} 字。"


def outline_prompt(question: str, n_images: int = 0) -> str:
    """The essay demo's outline question."""
    return images_first(OUTLINE_PREFIX + question, n_images)


def essay_prompt(question: str, outline: str, n_images: int = 0) -> str:
    """The essay demo's writing question: the topic and the (possibly user-edited) outline."""
    text = (
        f"根据下面的题目和写作大纲进行写作。\n**题目**\n{question}\n\n"
        f"**大纲：**\n{outline}\n\n**正文写作：**\n"
    )
    return images_first(text, n_images)


def article_prompt(instruction: str, n_images: int = 0) -> str:
    """One-pass writing: the instruction itself, reference images first."""
    return images_first(instruction, n_images)


def split_paragraphs(text: str, limit: int = MAX_PARAGRAPHS) -> tuple[str, ...]:
    """The draft's paragraphs: one per line, blank lines collapsed, at most `limit` (the demo's split)."""
    collapsed = re.sub(r"(\n\s*)+", "\n", text.strip())
    return tuple(p for p in collapsed.split("\n") if p)[:limit]


def indexed(paragraphs: Sequence[str]) -> str:
    """`<Seg{i}> {paragraph}\\n` for each paragraph, joined."""
    return "".join(f"<Seg{i}> {p}\n" for i, p in enumerate(paragraphs))


def slot_prompt(paragraphs: Sequence[str], n_images: int | None, n_uploads: int = 0) -> str:
    """Where images go: `n_images` None asks the model to choose how many; uploads are shown first."""
    count = "" if n_images is None else str(n_images)
    text = f'给定文章"{indexed(paragraphs)}" 根据上述文章，选择适合插入图像的{count}行'
    return f"{IMAGE_PLACEHOLDER} " * n_uploads + text


def caption_past(earlier: Sequence[tuple[int, str]]) -> str:
    """The chain of captions already given; its last separator becomes "。" as the demo writes it."""
    if not earlier:
        return ""
    parts = [f'<Seg{k}>后插入图像对应的标题是"{caption}"， ' for k, caption in earlier]
    return ("现在" + "".join(parts))[:-2] + "。"


def caption_question(paragraphs: Sequence[str], slot: int, earlier: Sequence[tuple[int, str]]) -> str:
    """The trained caption question for the image after paragraph `slot` (paragraphs up to `slot` + 1)."""
    text = indexed(paragraphs[: slot + 2])
    return f'给定文章"{text}" {caption_past(earlier)}给出适合在<Seg{slot}>后插入的图像对应的标题。'


def caption_prompt(paragraphs: Sequence[str], slot: int, earlier: Sequence[tuple[int, str]]) -> str:
    """The caption question wrapped in the 2.5 demo's one-shot example (system text: `CAPTION_SYSTEM`)."""
    return f"{CAPTION_EXAMPLE}<input>\n{caption_question(paragraphs, slot, earlier)}</input><output>"


def selection_prompt(
    paragraphs: Sequence[str], chosen_after: Sequence[int], slot: int, n_candidates: int
) -> str:
    """Choose among `n_candidates` images for the slot after paragraph `slot`.

    The context is the text up to and including paragraph `slot`, each paragraph followed by a newline, with
    an image after each paragraph in `chosen_after` (the images already chosen, in order); then the lettered
    candidates.
    """
    chosen = set(chosen_after)
    context = "".join(
        p + "\n" + (IMAGE_PLACEHOLDER if i in chosen and i < slot else "")
        for i, p in enumerate(paragraphs[: slot + 1])
    )
    letters = "\n".join(f"{chr(ord('A') + j)}.{IMAGE_PLACEHOLDER}" for j in range(n_candidates))
    return f"根据给定上下文和候选图像，选择合适的配图：{context}候选图像包括: {letters}"


def edit_prompt(
    action: ModelEdit, text: str, instruction: str = "", before: str = "", after: str = ""
) -> str:
    """The trained paragraph edits; the inserts name the paragraph before and after the new one ("" at an
    end of the article)."""
    if action == "rewrite":
        return f"改写以下段落：{text}\n基于以下素材：{instruction}"
    if action == "expand":
        return f"扩写以下段落：{text}\n基于以下素材：{instruction}"
    if action == "shorten":
        return f"缩写以下段落：{text}"
    if action == "insert_before":
        return f"在以下两段中插入一段。\n第一段：{before}\n第二段：{text}\n插入段的大纲：{instruction}"
    if action == "insert_after":
        return f"在以下两段中插入一段。\n第一段：{text}\n第二段：{after}\n插入段的大纲：{instruction}"
    raise ValueError(f"unknown edit action {action!r}")
