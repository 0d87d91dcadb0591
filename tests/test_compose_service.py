"""The composer's use cases on a scripted fake engine: the requests each step sends, the article it builds,
stopping and continuing, edits with undo and redo, persistence and the engine's declared capabilities."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from compose_fakes import DRAFT, ScriptedComposeFakeEngine, compose_service, image_folder

from ixc_app.compose.article import DONE, WritingSettings
from ixc_app.compose.errors import ComposeRejected
from ixc_app.compose.options import ComposeOptions
from ixc_app.compose.strings import say
from ixc_app.ixc.compose import CAPTION_PREFILL, CAPTION_STOP, CAPTION_SYSTEM, SELECTION_PREFILL, SLOT_PREFILL

OWNER = "owner-token-0123456789"


def options(n_images: int | None = 3, **settings: object) -> ComposeOptions:
    return ComposeOptions(n_images, None, WritingSettings(hd_num_single=1, hd_num_multi=1, **settings))


def run_all(service, article, **kw):  # type: ignore[no-untyped-def]
    return list(service.compose(article, **kw))[-1].article


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = ScriptedComposeFakeEngine()
    svc = compose_service(tmp_path / "data", engine, folders=(tmp_path / "library",))
    image_folder(tmp_path / "library", 12)
    svc.library.scan_folders()
    yield svc
    svc.store.close()


def test_the_whole_pipeline_sends_the_trained_prompts_and_illustrates(service) -> None:  # type: ignore[no-untyped-def]
    engine = service.runner.engine
    article = service.start(OWNER, "写一篇西湖游记", [], options(3))
    article = run_all(service, article)
    assert article.stage == DONE
    assert [p.text for p in article.paragraphs] == DRAFT.replace("\n\n", "\n").split("\n")
    assert [i for i, p in enumerate(article.paragraphs) if p.figure] == [1, 3, 5]
    assert len(article.image_keys) == 3 == len(set(article.image_keys))
    assert set(article.image_keys) <= set(service.library.pool(OWNER))
    assert all(p.figure.caption == "湖边的雷峰塔" for p in article.paragraphs if p.figure)

    outline, draft, slots, *rest = engine.requests
    assert outline.mode == "write" and outline.prefill == "" and outline.meta_instruction is None
    assert outline.turns[0].text == "请列出下面的作文题目对应的写作大纲。\n**题目：**\n写一篇西湖游记"
    assert draft.turns[0].text.endswith("**大纲：**\n一、春\n二、夏\n\n**正文写作：**\n")
    assert slots.prefill == SLOT_PREFILL and slots.turns[0].text.endswith("选择适合插入图像的3行")
    captions = [r for r in rest if r.prefill == CAPTION_PREFILL]
    assert len(captions) == 3
    assert all(r.meta_instruction == CAPTION_SYSTEM and r.stop == CAPTION_STOP for r in captions)
    assert '现在<Seg1>后插入图像对应的标题是"湖边的雷峰塔"， <Seg3>后' in captions[2].turns[0].text
    selections = [r for r in rest if r.prefill == SELECTION_PREFILL]
    assert len(selections) == 3
    # The third choice sees the two images chosen before it, then its four candidates.
    assert len(selections[2].turns[0].images) == 6
    assert selections[2].turns[0].images[0].key == article.image_keys[0]
    # "B" was answered every time: each slot shows its second candidate.
    assert all(p.figure.key == p.figure.candidates[1] for p in article.paragraphs if p.figure)
    stats = {s.step: s for s in article.stats}
    assert (
        stats["captions"].calls == 3
        and stats["candidates"].calls == 0
        and stats["select"].cached_tokens == 12
    )


def test_stop_mid_draft_keeps_the_text_and_continue_finishes_it(tmp_path: Path) -> None:
    engine = ScriptedComposeFakeEngine(step_s=0.01)
    service = compose_service(tmp_path / "data", engine)
    article = service.start(OWNER, "写一篇西湖游记", [], options(2, plan_first=False, llm_only=True))
    run = service.compose(article)
    partial = next(p for p in run if len(p.article.content.draft) >= 6)
    run.close()
    stored = service.open(OWNER, article.id)
    assert stored.stage == "draft" and stored.content.draft.startswith(partial.article.content.draft)
    assert 0 < len(stored.content.draft) < len(DRAFT)
    done = run_all(service, stored)
    assert engine.requests[-1].prefill == stored.content.draft  # continued, not restarted
    assert done.stage == DONE and done.content.draft.startswith(stored.content.draft)


def test_single_steps_and_editing_the_outline_before_the_draft(service) -> None:  # type: ignore[no-untyped-def]
    article = service.start(OWNER, "写一篇西湖游记", [], options(1))
    article = run_all(service, article, single_step=True)
    assert article.stage == "draft" and article.content.outline == "一、春\n二、夏"
    article = service.set_outline(OWNER, article.id, "一、只写秋天")
    run_all(service, article, single_step=True)
    assert "**大纲：**\n一、只写秋天\n" in service.runner.engine.requests[-1].turns[0].text


def test_reference_uploads_without_a_library_are_each_used_once(tmp_path: Path) -> None:
    engine = ScriptedComposeFakeEngine()
    service = compose_service(tmp_path / "data", engine)
    uploads = service.ingest([str(p) for p in image_folder(tmp_path / "uploads", 2)])
    article = run_all(service, service.start(OWNER, "写一篇西湖游记", uploads, options(None)))
    assert sorted(article.image_keys) == sorted(uploads)
    slots = next(r for r in engine.requests if r.prefill == SLOT_PREFILL)
    assert (
        slots.turns[0].text.startswith("<ImageHere> <ImageHere> 给定文章") and len(slots.turns[0].images) == 2
    )
    assert not any(r.prefill == CAPTION_PREFILL for r in engine.requests)
    # Two candidates, then one left: the second slot needs no call.
    assert sum(r.prefill == SELECTION_PREFILL for r in engine.requests) == 1


def test_no_images_anywhere_finishes_the_text_with_a_note(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    article = run_all(service, service.start(OWNER, "写", [], options(2)))
    assert article.stage == DONE and article.image_keys == () and say("note.no_images") in article.notes


def test_an_engine_without_write_mode_or_beams_is_used_in_base_mode_with_notes(tmp_path: Path) -> None:
    engine = ScriptedComposeFakeEngine(modes=frozenset({"base"}))
    service = compose_service(tmp_path / "data", engine)
    article = run_all(service, service.start(OWNER, "写", [], options(1, num_beams=4, sampling=False)))
    assert {r.mode for r in engine.requests} == {"base"}
    assert all(r.params.num_beams == 1 for r in engine.requests)
    assert engine.requests[0].params.do_sample  # beams degrade to sampling
    assert say("note.base_mode") in article.notes and say("note.no_beams", beams=4) in article.notes


def test_beam_search_is_sent_where_the_engine_declares_it(tmp_path: Path) -> None:
    engine = ScriptedComposeFakeEngine(supports_beam_search=True)
    service = compose_service(tmp_path / "data", engine)
    run_all(service, service.start(OWNER, "写", [], options(1, num_beams=3, sampling=False, llm_only=True)))
    assert engine.requests[0].params.num_beams == 3 and not engine.requests[0].params.do_sample
    assert engine.requests[0].params.top_k == 40 and engine.requests[0].params.top_p == 0.8


def test_edits_undo_redo_and_images(service) -> None:  # type: ignore[no-untyped-def]
    article = run_all(service, service.start(OWNER, "写一篇西湖游记", [], options(2)))
    aid = article.id
    texts = [p.text for p in article.paragraphs]
    [edited] = list(service.edit(OWNER, aid, 0, "replace_text", "新的\n开头"))[-1:]
    assert edited.paragraphs[0].text == "新的 开头"
    rewritten = list(service.edit(OWNER, aid, 2, "rewrite", "更生动"))[-1]
    assert (
        service.runner.engine.requests[-1].turns[0].text == f"改写以下段落：{texts[2]}\n基于以下素材：更生动"
    )
    assert service.runner.engine.requests[-1].mode == "base"
    assert rewritten.paragraphs[2].text == DRAFT.replace("\n\n", "\n").replace("\n", " ")
    inserted = list(service.edit(OWNER, aid, 0, "insert_after", "过渡"))[-1]
    assert len(inserted.paragraphs) == len(texts) + 1
    with pytest.raises(ComposeRejected):
        list(service.edit(OWNER, aid, 0, "insert_before", ""))
    moved = service.move(OWNER, aid, 0, 1)
    assert moved.paragraphs[1].text == "新的 开头"
    deleted = list(service.edit(OWNER, aid, 1, "delete", ""))[-1]
    assert "新的 开头" not in [p.text for p in deleted.paragraphs]
    for _ in range(4):
        service.undo(OWNER, aid)
    assert service.open(OWNER, aid).paragraphs[0].text == "新的 开头"
    service.undo(OWNER, aid)
    assert [p.text for p in service.open(OWNER, aid).paragraphs] == texts
    assert service.redo(OWNER, aid).paragraphs[0].text == "新的 开头"

    slot = next(i for i, p in enumerate(article.paragraphs) if p.figure)
    other = next(k for k in service.library.pool(OWNER) if k not in article.image_keys)
    swapped = service.pick_image(OWNER, aid, slot, other)
    assert swapped.paragraphs[slot].figure.key == other
    with pytest.raises(ComposeRejected):  # never the same image twice
        service.pick_image(OWNER, aid, slot + 2, other)
    searched = service.search_images(OWNER, aid, slot, "湖")
    assert other not in [
        k
        for p in searched.paragraphs
        if p is not searched.paragraphs[slot]
        for k in [p.figure and p.figure.key]
    ]
    removed = service.remove_image(OWNER, aid, slot)
    assert removed.paragraphs[slot].figure is None
    assert service.undo(OWNER, aid).paragraphs[slot].figure is not None


def test_articles_survive_a_restart_and_belong_to_their_owner(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    article = run_all(service, service.start(OWNER, "写一篇西湖游记", [], options(1, llm_only=True)))
    service.store.close()
    again = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    assert again.open(OWNER, article.id) == article
    assert [s.id for s in again.articles(OWNER)] == [article.id]
    assert again.store.get("someone-else-0123456", article.id) is None
    assert again.rename(OWNER, article.id, "游记").title == "游记"
    assert again.delete(OWNER, article.id) and again.articles(OWNER) == []


def test_a_run_does_not_revive_a_deleted_article(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine(step_s=0.01))
    article = service.start(OWNER, "写", [], options(1, llm_only=True))
    run = service.compose(article)
    next(itertools.islice(run, 2, None))
    service.delete(OWNER, article.id)
    run.close()
    assert service.store.get(OWNER, article.id) is None


def test_inputs_are_checked(service) -> None:  # type: ignore[no-untyped-def]
    from ixc_app.compose.options import n_images, target_length

    with pytest.raises(ComposeRejected):
        service.start(OWNER, "  ", [], options())
    with pytest.raises(ComposeRejected):
        n_images("11")
    assert n_images("auto") is None and n_images("4") == 4 and target_length(0) is None
    with pytest.raises(ComposeRejected):
        target_length(-5)


def test_a_hand_edited_draft_replaces_the_paragraphs_but_an_unchanged_one_keeps_the_images(service) -> None:  # type: ignore[no-untyped-def]
    from ixc_app.compose.article import shown_draft

    article = run_all(service, service.start(OWNER, "写", [], options(2)))
    edited = list(service.edit(OWNER, article.id, 0, "replace_text", "改过的开头"))[-1]
    assert service.set_draft(OWNER, article.id, shown_draft(edited)) == service.open(OWNER, article.id)
    assert service.open(OWNER, article.id).image_keys == article.image_keys
    redrafted = service.set_draft(OWNER, article.id, "一\n二\n三")
    assert [p.text for p in redrafted.paragraphs] == ["一", "二", "三"] and redrafted.stage == "slots"
    assert redrafted.image_keys == ()
