"""The composer's trained prompt formats against literal strings (spec section 5 and the official 2.5
composition demo), and the tolerant parsing of the answers."""

from __future__ import annotations

import pytest

from ixc_app.ixc.compose import (
    CAPTION_PREFILL,
    CAPTION_SYSTEM,
    SELECTION_PREFILL,
    SLOT_PREFILL,
    article_prompt,
    caption_past,
    caption_prompt,
    caption_question,
    edit_prompt,
    essay_prompt,
    indexed,
    outline_prompt,
    selection_prompt,
    slot_prompt,
    split_paragraphs,
    with_target_length,
)
from ixc_app.ixc.compose_parse import parse_caption, parse_choice, parse_slots, spread

PARAGRAPHS = ["西湖在杭州。", "春天的苏堤很美。", "断桥残雪。", "雷峰塔的传说。"]


def test_fixed_texts() -> None:
    assert SLOT_PREFILL == "适合插入图像的行是"
    assert CAPTION_PREFILL == '标题是"'
    assert SELECTION_PREFILL == "最合适的图是"
    assert CAPTION_SYSTEM == (
        "请严格按照示例的<input> <output>格式，根据给定的文章，给出适合在某一段后插入的图像对应的标题。"
    )


def test_outline_and_essay_prompts() -> None:
    assert outline_prompt("西湖游记") == "请列出下面的作文题目对应的写作大纲。\n**题目：**\n西湖游记"
    assert essay_prompt("西湖游记", "一、春\n二、夏") == (
        "根据下面的题目和写作大纲进行写作。\n**题目**\n西湖游记\n\n**大纲：**\n一、春\n二、夏\n\n**正文写作：**\n"
    )
    assert (
        outline_prompt("题", 2)
        == "<ImageHere> <ImageHere>请列出下面的作文题目对应的写作大纲。\n**题目：**\n题"
    )


def test_one_pass_prompt_puts_reference_images_first() -> None:
    assert article_prompt("写一篇游记") == "写一篇游记"
    assert article_prompt("写一篇游记", 1) == "<ImageHere>写一篇游记"
    assert article_prompt("写一篇游记", 3) == "<ImageHere> <ImageHere> <ImageHere>写一篇游记"
    assert with_target_length("写", 800) == "写\n要求：不少于 800 字。"
    assert with_target_length("写", None) == "写"


def test_paragraphs_split_on_lines_collapsing_blanks_at_most_sixty() -> None:
    assert split_paragraphs("  a\n\n \n b \nc\n") == ("a", "b ", "c")
    assert len(split_paragraphs("\n".join(str(i) for i in range(80)))) == 60


def test_seg_indexing_and_slot_prompt() -> None:
    assert indexed(["甲", "乙"]) == "<Seg0> 甲\n<Seg1> 乙\n"
    assert (
        slot_prompt(["甲", "乙"], 2) == '给定文章"<Seg0> 甲\n<Seg1> 乙\n" 根据上述文章，选择适合插入图像的2行'
    )
    assert slot_prompt(["甲"], None) == '给定文章"<Seg0> 甲\n" 根据上述文章，选择适合插入图像的行'
    assert slot_prompt(["甲"], 1, n_uploads=2).startswith('<ImageHere> <ImageHere> 给定文章"<Seg0> 甲\n"')


def test_caption_past_chain() -> None:
    assert caption_past([]) == ""
    assert caption_past([(0, "湖")]) == '现在<Seg0>后插入图像对应的标题是"湖"。'
    assert caption_past([(0, "湖"), (2, "桥")]) == (
        '现在<Seg0>后插入图像对应的标题是"湖"， <Seg2>后插入图像对应的标题是"桥"。'
    )


def test_caption_question_covers_paragraphs_up_to_the_next_one() -> None:
    assert caption_question(PARAGRAPHS, 1, [(0, "湖")]) == (
        '给定文章"<Seg0> 西湖在杭州。\n<Seg1> 春天的苏堤很美。\n<Seg2> 断桥残雪。\n" '
        '现在<Seg0>后插入图像对应的标题是"湖"。给出适合在<Seg1>后插入的图像对应的标题。'
    )


def test_caption_prompt_is_the_one_shot_example_then_the_question() -> None:
    prompt = caption_prompt(PARAGRAPHS, 0, [])
    assert prompt.startswith('<input>\n给定文章"<Seg0> 大多数的车友们在选车、购车时都会格外关注续航\n')
    assert '<output>\n标题是"一个人正站在充电桩前给电动滑板车充电，面容看上去有些疲惫"</output>\n' in prompt
    assert prompt.endswith(
        '<input>\n给定文章"<Seg0> 西湖在杭州。\n<Seg1> 春天的苏堤很美。\n" '
        "给出适合在<Seg0>后插入的图像对应的标题。</input><output>"
    )


def test_selection_prompt_interleaves_chosen_images_and_letters_candidates() -> None:
    assert selection_prompt(PARAGRAPHS, [0], 2, 3) == (
        "根据给定上下文和候选图像，选择合适的配图：西湖在杭州。\n<ImageHere>春天的苏堤很美。\n断桥残雪。\n"
        "候选图像包括: A.<ImageHere>\nB.<ImageHere>\nC.<ImageHere>"
    )
    assert selection_prompt(PARAGRAPHS, [], 0, 1) == (
        "根据给定上下文和候选图像，选择合适的配图：西湖在杭州。\n候选图像包括: A.<ImageHere>"
    )


def test_edit_prompts() -> None:
    assert edit_prompt("rewrite", "段", "更生动") == "改写以下段落：段\n基于以下素材：更生动"
    assert edit_prompt("expand", "段", "细节") == "扩写以下段落：段\n基于以下素材：细节"
    assert edit_prompt("shorten", "段") == "缩写以下段落：段"
    assert edit_prompt("insert_before", "二", "过渡", before="一") == (
        "在以下两段中插入一段。\n第一段：一\n第二段：二\n插入段的大纲：过渡"
    )
    assert edit_prompt("insert_after", "一", "过渡", after="") == (
        "在以下两段中插入一段。\n第一段：一\n第二段：\n插入段的大纲：过渡"
    )


@pytest.mark.parametrize(
    ("answer", "wanted", "expected"),
    [
        ("<Seg1><Seg3>", 2, (1, 3)),
        ("适合插入图像的行是<Seg3>, <Seg1>", 2, (1, 3)),  # the prefill repeated, order normalised
        ("<Seg2><Seg2><Seg2>", 2, (2, 4)),  # duplicates dropped, the missing one spread in
        ("<Seg9><Seg-1><Seg5>", 1, (5,)),  # out of range and malformed markers are ignored
        ("<Seg9>", 1, (3,)),  # only out of range: the fallback spreads
        ("<Seg 4> seg0 <seg5", 3, (0, 4, 5)),  # malformed markers still read
        ("garbage", 3, (1, 3, 4)),  # none given: spread evenly, exactly as many as asked
        ("<Seg1><Seg2><Seg3><Seg4>", 2, (1, 2)),  # too many: the first named are kept
        ("<Seg4>", None, (4,)),  # automatic: what the model named
        ("nothing", None, (2, 4)),  # automatic and none named: one per three paragraphs
        ("<Seg0>", 9, (0, 1, 2, 3, 4, 5)),  # more than paragraphs: capped
    ],
)
def test_slot_answers(answer: str, wanted: int | None, expected: tuple[int, ...]) -> None:
    assert parse_slots(answer, 6, wanted) == expected


def test_slot_spread_is_deterministic_and_distinct() -> None:
    assert spread(6, 3) == (1, 3, 4)
    assert parse_slots("x", 0, 3) == ()
    for n in range(1, 12):
        for k in range(1, n + 1):
            assert len(parse_slots("x", n, k)) == k


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('一只白鹭站在湖边"', "一只白鹭站在湖边"),
        ('标题是"一只白鹭站在湖边"</output>', "一只白鹭站在湖边"),  # prefill repeated
        ("一只白鹭站在湖边", "一只白鹭站在湖边"),  # no closing quote: all of it
        ("  “断桥” 残雪”", "断桥"),  # curly quotes
        ('"', "西湖在杭州。"),  # empty: from the paragraph
        ("", "西湖在杭州。"),
    ],
)
def test_caption_answers(answer: str, expected: str) -> None:
    assert parse_caption(answer, "西湖在杭州。") == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("B", 1),
        (" C.", 2),
        ("最合适的图是D", 3),
        ("：Ｂ", 1),
        ("b", 1),
        ("E", 0),
        ("garbage", 0),
        ("", 0),
        ("图", 0),
    ],
)
def test_selection_answers(answer: str, expected: int) -> None:
    assert parse_choice(answer, 4) == expected
