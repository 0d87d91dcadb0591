"""The composer's public API endpoints, with the `/chat` ownership rules: the article id a call returns is a
handle carrying the owner token, and whoever holds it may edit and export that article.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    job = client.submit("写一篇关于西湖的游记", [], "3", api_name="/compose")
    for markdown_so_far, article_id in job: ...
    client.predict(article_id, 0, "rewrite", "更生动", api_name="/article_edit")
    path = client.predict(article_id, "html", api_name="/article_export")
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from ixc_app.compose.service import ComposeService
from ixc_app.ui.compose_handlers import ComposeHandlers
from ixc_app.ui.errors import user_errors
from ixc_app.ui.identity import format_handle

COMPOSE_DESCRIPTION = (
    "Compose an illustrated article from an instruction (and optional reference images) with the image "
    "library. "
    "n_images is 'auto' or 1-10. Yields (article Markdown so far, article_id); pass article_id to "
    "/article_edit and /article_export."
)
EDIT_DESCRIPTION = (
    "Edit paragraph `paragraph` (0-based) of an article: action is rewrite, expand, shorten, insert_before, "
    "insert_after (text = instruction), replace_text (text = the new text) or delete. Yields (article "
    "Markdown so far, article_id)."
)
EXPORT_DESCRIPTION = (
    "Export an article as 'markdown-zip' (article.md and images/) or 'html' (one self-contained file)."
)


class ComposeApi:
    def __init__(self, service: ComposeService, handlers: ComposeHandlers) -> None:
        self.service = service
        self.handlers = handlers

    def compose(
        self,
        instruction: str | None,
        files: list[str] | None = None,
        n_images: str | None = "auto",
        target_length: float | None = 0,
        plan_first: bool | None = None,
        llm_only: bool | None = None,
        sampling: bool | None = None,
        num_beams: float | None = None,
        repetition_penalty: float | None = None,
        max_new_tokens: float | None = None,
        seed: float | None = None,
        use_meta: bool | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[str, str]]:
        """The whole composition in one call (the parameter names are the API's)."""
        form = (
            n_images,
            target_length,
            plan_first,
            llm_only,
            sampling,
            num_beams,
            repetition_penalty,
            max_new_tokens,
            seed,
            use_meta,
        )
        owner = self.handlers.owners.new_owner(request)
        with user_errors():
            options = self.handlers.options(form)
            keys = self.service.ingest(files or [])
            article = self.service.start(owner, instruction or "", keys, options)
        handle = format_handle(owner, article.id)
        yield "", handle
        with user_errors():
            for progress in self.service.compose(article):
                yield self.service.markdown(progress.article), handle

    def article_edit(
        self,
        article_id: str,
        paragraph: float,
        action: str,
        text: str | None = "",
        request: gr.Request | None = None,
    ) -> Iterator[tuple[str, str]]:
        with user_errors():
            owner, aid = self.handlers.owners.handle(article_id or "", request)
            for article in self.service.edit(owner, aid, int(paragraph or 0), action or "", text or ""):
                yield self.service.markdown(article), article_id

    def article_export(
        self, article_id: str, format: str | None = "html", request: gr.Request | None = None
    ) -> str:
        with user_errors():
            owner, aid = self.handlers.owners.handle(article_id or "", request)
            return str(self.service.export(owner, aid, format or "html"))
