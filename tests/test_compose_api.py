"""The composer's public API on the tiny checkpoint: `/compose` with a library of generated images, stopping
mid-draft, `/article_edit` and `/article_export` (the zip opens and its links resolve, the HTML embeds every
image). The demo model's answers are noise, so this exercises the pipeline's fallbacks end to end."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markdown
import pytest
from app_harness import RunningApp
from compose_fakes import start_composer
from gradio_client.exceptions import AppError

from ixc_app.compose.article import DONE, Article
from ixc_app.ui.identity import format_handle, parse_handle

FAST = {"plan_first": False, "max_new_tokens": 160, "seed": 11}
COMPOSE_PARAMETERS = [
    "instruction", "files", "n_images", "target_length", "plan_first", "llm_only", "sampling", "num_beams",
    "repetition_penalty", "max_new_tokens", "seed", "use_meta",
]  # fmt: skip


@pytest.fixture(scope="module")
def composer(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[RunningApp]:
    running = start_composer(tmp_path_factory.mktemp("app"), tmp_path_factory.mktemp("library"), engine)
    yield running
    running.close()


def stored(app: RunningApp, handle: str) -> Article:
    owner, article_id = parse_handle(handle)
    return app.services.compose.open(owner, article_id)


def compose(app: RunningApp, instruction: str, n_images: str = "2", **settings: Any) -> list[tuple[str, str]]:
    job = app.client().submit(instruction, [], n_images, api_name="/compose", **{**FAST, **settings})
    job.result()
    return [tuple(o) for o in job.outputs()]


def test_the_endpoints_are_typed(composer: RunningApp) -> None:
    info = composer.client().view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in info["/compose"]["parameters"]] == COMPOSE_PARAMETERS
    assert [p["parameter_name"] for p in info["/article_edit"]["parameters"]] == [
        "article_id", "paragraph", "action", "text"
    ]  # fmt: skip
    assert [p["parameter_name"] for p in info["/article_export"]["parameters"]] == ["article_id", "format"]


def test_compose_edit_and_export(composer: RunningApp) -> None:
    outputs = compose(composer, "写一篇关于西湖春天的游记。")
    handle = outputs[-1][1]
    assert {h for _, h in outputs} == {handle}
    article = stored(composer, handle)
    assert article.stage == DONE and article.paragraphs
    pool = set(composer.services.compose.library.pool(parse_handle(handle)[0]))
    assert len(article.image_keys) == min(2, len(article.paragraphs))
    assert len(set(article.image_keys)) == len(article.image_keys) and set(article.image_keys) <= pool
    assert outputs[-1][0].count("![") == len(article.image_keys)
    assert {s.step for s in article.stats} >= {"draft", "slots", "captions", "candidates", "select"}

    client = composer.client()
    edits = [tuple(o) for o in client.submit(handle, 0, "shorten", "", api_name="/article_edit")]
    edited = stored(composer, handle)
    assert edits[-1] == (composer.services.compose.markdown(edited), handle)
    assert len(edited.undo_stack) == len(article.undo_stack) + 1
    client.predict(handle, 0, "replace_text", "<script>alert(1)</script>第一段", api_name="/article_edit")
    assert stored(composer, handle).paragraphs[0].text == "<script>alert(1)</script>第一段"

    archive = client.predict(handle, "markdown-zip", api_name="/article_export")
    with zipfile.ZipFile(Path(archive["path"] if isinstance(archive, dict) else archive)) as zipped:
        names = set(zipped.namelist())
        text = zipped.read("article.md").decode("utf-8")
        for name in names - {"article.md"}:
            assert zipped.read(name)[:8] == b"\x89PNG\r\n\x1a\n"
    rendered = ImageSources()
    rendered.feed(markdown.markdown(text))
    links = rendered.sources
    assert len(links) == len(article.image_keys) and set(links) == names - {"article.md"}
    assert "<script>" not in markdown.markdown(text)

    page = client.predict(handle, "html", api_name="/article_export")
    document = Path(page["path"] if isinstance(page, dict) else page).read_text(encoding="utf-8")
    images = ImageSources()
    images.feed(document)
    assert len(images.sources) == len(article.image_keys)
    assert all(src.startswith("data:image/png;base64,") for src in images.sources)
    assert "<script>alert" not in document


def test_stop_mid_draft_keeps_what_was_written(composer: RunningApp, engine: Any) -> None:
    job = composer.client().submit(
        "写一篇很长的文章。", [], "1", api_name="/compose", **{**FAST, "max_new_tokens": 2500}
    )
    deadline = time.monotonic() + 60
    while not any(text for text, _ in job.outputs()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    handle = job.outputs()[-1][1]
    job.cancel()
    steps = engine.steps_run
    deadline = time.monotonic() + 30
    while True:
        time.sleep(0.6)
        if engine.steps_run == steps:
            break
        steps = engine.steps_run
        assert time.monotonic() < deadline, "the engine kept decoding"
    article = stored(composer, handle)
    assert article.stage == "draft" and article.content.draft
    assert article.paragraphs and not article.image_keys


def test_handles_carry_their_owner(composer: RunningApp) -> None:
    handle = compose(composer, "写一句话。", "1", llm_only=True, max_new_tokens=8)[-1][1]
    _, article_id = parse_handle(handle)
    stranger = format_handle("stranger-owner-0123456789", article_id)
    with pytest.raises(AppError, match="not found"):
        composer.client().predict(stranger, "html", api_name="/article_export")
    with pytest.raises(AppError, match="not one this app returned"):
        composer.client().predict("nonsense", 0, "delete", "", api_name="/article_edit")
    with pytest.raises(AppError, match="must be one of"):
        composer.client().predict(handle, 0, "explode", "", api_name="/article_edit")
    with pytest.raises(AppError, match="'auto' or a whole number"):
        compose(composer, "写", "eleven")


class ImageSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")
