"""Rendering and export are safe whatever the model or the user wrote, checked with an HTML parser: the
preview, the self-contained HTML file and the Markdown of the zip (as a Markdown viewer would render it)."""

from __future__ import annotations

import io
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
from compose_fakes import image_folder

from ixc_app.chat.ingest import media_limits
from ixc_app.compose.article import Article, Content, Figure, Paragraph
from ixc_app.compose.render import article_html, html_document, markdown_text, markdown_zip, media_url
from ixc_app.config import Limits
from ixc_app.media import MediaStore

ATTACKS = [
    "<script>alert('script')</script>after the script",
    '<img src=x onerror="alert(1)">',
    '[click me](javascript:alert(1)) and <a href="javascript:alert(2)">this</a>',
    '<iframe src="https://evil.example/"></iframe>',
    '<div style="position:fixed" onclick="alert(3)">raw html</div><b onmouseover=alert(4)>b</b>',
    "![tracker](https://evil.example/pixel.png) and ![x](javascript:alert(5))",
    "![data](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoNik+) [d](data:text/html,<script>x</script>)",
    "<svg onload=alert(7)></svg><math><mi xlink:href=javascript:alert(8)>m</mi></math>",
    "**bold** and [a fine link](https://example.org/page)",
]
CAPTION = '"><script>alert("caption")</script><img src=x onerror=alert(9)>'


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.found


def assert_inert(html: str, image_sources: set[str]) -> None:
    found = elements(html)
    tags = {tag for tag, _ in found}
    assert not tags & {"script", "iframe", "svg", "math", "div", "object", "embed", "style", "form"}, tags
    for tag, attrs in found:
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
        for name in ("href", "src", "xlink:href"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "vbscript:")), (tag, attrs)
        if tag == "a":
            assert (attrs.get("href") or "https:").startswith(("https:", "http:", "mailto:")), attrs
        if tag == "img":
            assert attrs.get("src") in image_sources, attrs


@pytest.fixture
def article(tmp_path: Path) -> tuple[Article, MediaStore]:
    media = MediaStore(tmp_path / "media")
    keys = [media.add(p, p.name, media_limits(Limits())).key for p in image_folder(tmp_path / "img", 2)]
    paragraphs = [Paragraph(text) for text in ATTACKS]
    paragraphs[1] = Paragraph(ATTACKS[1], Figure(CAPTION, (keys[0],), keys[0]))
    paragraphs[5] = Paragraph(ATTACKS[5], Figure("[x](javascript:alert(10))", (keys[1],), keys[1]))
    return Article(
        id="a" * 16, owner="o" * 16, title="<script>t</script>", content=Content(paragraphs=tuple(paragraphs))
    ), media


def test_the_preview_is_inert_and_shows_only_stored_images(article: tuple[Article, MediaStore]) -> None:
    art, media = article
    url = media_url(media)
    html = article_html(art, url)
    assert_inert(html, {url(k) for k in art.image_keys})
    assert sum(tag == "img" for tag, _ in elements(html)) == 2
    assert "after the script" in html and "<strong>bold</strong>" in html
    # Raw HTML is shown as text, not rendered, even where a tag would be allowed from Markdown.
    assert "&lt;b onmouseover=alert(4)&gt;b&lt;/b&gt;" in html and "<b>" not in html
    assert '<a href="https://example.org/page"' in html


def test_the_html_export_is_inert_and_embeds_every_image(article: tuple[Article, MediaStore]) -> None:
    art, media = article
    document = html_document(art, media)
    images = [attrs["src"] for tag, attrs in elements(document) if tag == "img"]
    assert len(images) == len(art.image_keys) == 2
    assert all(src and src.startswith("data:image/png;base64,") for src in images)
    head, body = document.split("<body>", 1)
    assert_inert(body, set(images))  # type: ignore[arg-type]
    assert [tag for tag, _ in elements(head)] == ["html", "head", "meta", "title", "style"]
    assert "<title>&lt;script&gt;t&lt;/script&gt;</title>" in document


def test_the_markdown_export_renders_inert_and_its_links_resolve(article: tuple[Article, MediaStore]) -> None:
    art, media = article
    with zipfile.ZipFile(io.BytesIO(markdown_zip(art, media))) as archive:
        names = set(archive.namelist())
        text = archive.read("article.md").decode("utf-8")
    rendered = markdown.markdown(text)
    sources = {attrs["src"] for tag, attrs in elements(rendered) if tag == "img"}
    assert len(sources) == 2 and all(src in names for src in sources)  # type: ignore[operator]
    assert_inert(rendered, sources)  # type: ignore[arg-type]
    assert not any(tag == "a" for tag, _ in elements(rendered))  # model text forms no links in Markdown


def test_markdown_places_each_image_after_its_paragraph(article: tuple[Article, MediaStore]) -> None:
    art, _ = article
    blocks = markdown_text(art, lambda key: f"images/{key[:4]}.png").split("\n\n")
    assert blocks[2].startswith("![") and blocks[2].endswith(f"(images/{art.image_keys[0][:4]}.png)")
