"""An article as safe HTML (the live preview and the self-contained export) and as a Markdown + images zip.

Model and user text is never trusted. For HTML each paragraph is Markdown with every `<` escaped first (so raw
HTML shows as text), converted by `markdown`, then cleaned by `nh3` with an allow-list that has no images, no
event handlers and only http, https and mailto links. The images are written by this module alone, with
escaped captions, and the whole document is cleaned once more with the one rule that an image's source must
be one this module put there. For Markdown, paragraph text has `<`, `[` and `]` escaped, so it can form
neither raw HTML nor links nor images; only the figures this module writes are images.
"""

from __future__ import annotations

import base64
import html
import io
import zipfile
from collections.abc import Callable
from urllib.parse import quote

import markdown
import nh3

from ixc_app.compose.article import Article
from ixc_app.media import MediaStore

TEXT_TAGS = {
    "p", "br", "strong", "em", "b", "i", "u", "s", "del", "code", "pre", "blockquote", "h1", "h2", "h3",
    "h4", "h5", "h6", "ul", "ol", "li", "hr", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
TEXT_ATTRIBUTES = {"a": {"href", "title"}}
LINK_SCHEMES = {"http", "https", "mailto"}
FIGURE_TAGS = {"figure", "img", "figcaption", "article", "section"}
IMAGE_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}
MARKDOWN_NAME = "article.md"
IMAGES_FOLDER = "images"

ImageUrl = Callable[[str], str]
"""The address of a stored image (by key) where the rendered article will be read."""

EXPORT_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.7;"
    "color:#1f2328}figure{margin:1.5rem 0;text-align:center;break-inside:avoid}img{max-width:100%;"
    "height:auto;border-radius:6px}figcaption{color:#57606a;font-size:.9rem;margin-top:.4rem}"
    "@media print{body{margin:0}}"
)


def text_html(text: str) -> str:
    """One paragraph of model or user text as clean HTML."""
    converted = markdown.markdown(text.replace("<", "&lt;"), extensions=["tables"], output_format="html")
    return nh3.clean(converted, tags=TEXT_TAGS, attributes=TEXT_ATTRIBUTES, url_schemes=LINK_SCHEMES)


def figure_html(src: str, caption: str) -> str:
    alt = html.escape(caption, quote=True)
    label = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{html.escape(src, quote=True)}" alt="{alt}">{label}</figure>'


def article_html(article: Article, image_url: ImageUrl) -> str:
    """The article body: paragraphs and figures, each chosen image after its paragraph."""
    parts: list[str] = []
    sources: set[str] = set()
    for paragraph in article.paragraphs:
        parts.append(f"<section>{text_html(paragraph.text)}</section>")
        figure = paragraph.figure
        if figure and figure.key:
            src = image_url(figure.key)
            sources.add(src)
            parts.append(figure_html(src, figure.caption or ""))
    return _final_clean(f"<article>{''.join(parts)}</article>", sources)


def _final_clean(document: str, sources: set[str]) -> str:
    """The last pass: the same allow-list, plus images whose source is one of `sources`."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            return value if value in sources else None
        if tag == "a" and attribute == "href" and value.split(":", 1)[0].lower() not in LINK_SCHEMES:
            return None
        return value

    return nh3.clean(
        document,
        tags=TEXT_TAGS | FIGURE_TAGS,
        attributes={**TEXT_ATTRIBUTES, "img": {"src", "alt"}},
        attribute_filter=keep,
        url_schemes=LINK_SCHEMES | {"data"},
    )


def media_url(media: MediaStore) -> ImageUrl:
    """Gradio's file route for a stored image (the media folder is one of the app's allowed paths)."""
    return lambda key: "/gradio_api/file=" + quote(str(media.path(key)))


def data_url(media: MediaStore) -> ImageUrl:
    def url(key: str) -> str:
        stored = media.get(key)
        if stored is None or stored.kind != "image":
            raise ValueError(f"image {key[:12]} is not stored")
        return f"data:{stored.mime};base64,{base64.b64encode(stored.path.read_bytes()).decode('ascii')}"

    return url


def html_document(article: Article, media: MediaStore) -> str:
    """One self-contained HTML file: every image embedded as a data URL; printable to PDF."""
    title = html.escape(article.title)
    body = article_html(article, data_url(media))
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{EXPORT_CSS}</style></head><body>{body}</body></html>\n"
    )


def inert_markdown(text: str) -> str:
    """Paragraph text that Markdown renders as text: no raw HTML, no links, no images."""
    return text.replace("\\", "\\\\").replace("<", "&lt;").replace("[", "\\[").replace("]", "\\]")


def image_file_name(key: str, mime: str) -> str:
    return f"{key[:16]}{IMAGE_EXTENSIONS.get(mime, '.img')}"


def markdown_text(article: Article, image_path: ImageUrl) -> str:
    """The article as Markdown, each chosen image after its paragraph."""
    blocks: list[str] = []
    for paragraph in article.paragraphs:
        blocks.append(inert_markdown(paragraph.text))
        figure = paragraph.figure
        if figure and figure.key:
            caption = " ".join((figure.caption or "").split())
            blocks.append(f"![{inert_markdown(caption)}]({image_path(figure.key)})")
    return "\n\n".join(blocks) + "\n"


def markdown_zip(article: Article, media: MediaStore) -> bytes:
    """`article.md` and an `images/` folder holding every image it links to."""
    names: dict[str, str] = {}
    for key in article.image_keys:
        stored = media.get(key)
        if stored is None:
            raise ValueError(f"image {key[:12]} is not stored")
        names[key] = image_file_name(key, stored.mime)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MARKDOWN_NAME, markdown_text(article, lambda key: f"{IMAGES_FOLDER}/{names[key]}"))
        for key, name in names.items():
            archive.write(media.path(key), f"{IMAGES_FOLDER}/{name}", compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def export_name(article: Article, suffix: str) -> str:
    """A safe file name from the title (letters, digits and CJK kept)."""
    stem = "".join(ch if ch.isalnum() else "-" for ch in article.title).strip("-")[:60] or "article"
    return f"{stem}{suffix}"
