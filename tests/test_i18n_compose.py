"""The composer speaks the request's language: its refusals, the status lines of a run and the notes it
keeps, through the real service on a scripted engine; English outside a request. Its static page text goes
to the page's translation table, in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_fakes import ScriptedComposeFakeEngine, compose_service
from test_compose_service import OWNER, options

from ixc_app.compose.errors import ComposeRejected
from ixc_app.config import Limits
from ixc_app.i18n import speaking
from ixc_app.ui.compose_handlers import status_text
from ixc_app.ui.language import static_values, translations


def test_a_refusal_is_said_in_the_requests_language(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    with speaking("zh"), pytest.raises(ComposeRejected) as refused:
        service.start(OWNER, "   ", [], options(2))
    assert str(refused.value) == "指令为空；请描述你想要的文章，或粘贴一份大纲。"
    with pytest.raises(ComposeRejected, match=r"^The instruction is empty; describe the article"):
        service.start(OWNER, "", [], options(2))
    service.store.close()


def test_a_run_reports_and_notes_in_the_language_it_was_asked_in(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    with speaking("zh"):
        article = service.start(OWNER, "写一篇西湖游记", [], options(2, plan_first=False))
        steps = list(service.compose(article))
        final = status_text(steps[-1].article)
    statuses = [step.status for step in steps]
    assert "草稿：正在写…" in statuses
    assert any("没有可用于配图的图片" in note for note in steps[-1].article.notes)
    assert "提示词" in final and "前缀缓存" in final
    english = list(service.compose(service.start(OWNER, "A trip", [], options(1, plan_first=False))))
    assert "Draft: writing…" in [step.status for step in english]
    service.store.close()


def test_the_composers_static_text_is_in_the_pages_table_in_both_languages() -> None:
    table = translations(static_values(Limits()))
    assert table.translations["zh"]["ui.tab"] == "图文创作"
    assert table.translations["en"]["ui.tab"] == "Composer"
    assert table.translations["zh"]["action.rewrite"] == "改写"
    assert "ui.library_status" not in table.translations["en"]  # filled in when said, not static


def test_an_edit_refused_by_the_article_is_said_in_the_requests_language(tmp_path: Path) -> None:
    service = compose_service(tmp_path / "data", ScriptedComposeFakeEngine())
    article = service.start(OWNER, "写一篇西湖游记", [], options(1, plan_first=False, llm_only=True))
    article = list(service.compose(article))[-1].article
    with speaking("zh"), pytest.raises(ComposeRejected) as refused:
        service.undo(OWNER, article.id)
        service.redo(OWNER, article.id)
        service.redo(OWNER, article.id)
    assert str(refused.value) == "没有可重做的内容。"
    service.store.close()
