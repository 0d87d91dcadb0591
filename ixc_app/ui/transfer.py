"""Export and import of a conversation: two small buttons beside Rename and Delete, and two API endpoints.

The browser keeps only an owner token; an export (`chat.transfer`: JSON and media in a zip) is how a user
keeps a conversation beyond the browser's site data, and an import makes it a new conversation of whoever
imports it. The API has the same pair: `/conversation_export` takes a conversation id `/chat` returned and
gives the zip; `/conversation_import` takes a zip and returns the id of the new conversation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ixc_app.i18n import tr
from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.errors import user_errors
from ixc_app.ui.identity import format_handle
from ixc_app.ui.language import word
from ixc_app.ui.uploads import upload_cache

if TYPE_CHECKING:
    from ixc_app.ui.layout import ChatView

EXPORTS = "exports"
"""Folder in Gradio's upload cache for exports: served from there, swept with the uploads."""


@dataclass(frozen=True)
class TransferView:
    export: gr.Button
    download: gr.File
    upload: gr.UploadButton
    api_export: gr.Button
    api_conversation_in: gr.Textbox
    api_archive_out: gr.File
    api_import: gr.Button
    api_archive_in: gr.File
    api_conversation_out: gr.Textbox


def transfer_buttons() -> TransferView:
    """Export and Import, and the hidden components that type the two API endpoints."""
    with gr.Row():
        export = gr.Button(word("chat.export"), size="sm", elem_id="export-conversation")
        upload = gr.UploadButton(
            word("chat.import"), size="sm", file_types=[".zip"], elem_id="import-conversation"
        )
    download = gr.File(label=word("chat.exported"), visible=False, interactive=False, elem_id="export-file")
    with gr.Group(visible=False):
        return TransferView(
            export=export,
            download=download,
            upload=upload,
            api_export=gr.Button("export", visible=False),
            api_conversation_in=gr.Textbox(label="conversation_id", visible=False),
            api_archive_out=gr.File(label="archive", visible=False),
            api_import=gr.Button("import", visible=False),
            api_archive_in=gr.File(label="archive", type="filepath", visible=False),
            api_conversation_out=gr.Textbox(label="conversation_id", visible=False),
        )


def _export_folder() -> Path:
    return upload_cache() / EXPORTS / secrets.token_urlsafe(12)


class TransferHandlers:
    def __init__(self, handlers: ChatHandlers) -> None:
        self.handlers = handlers
        self.service = handlers.service

    def export_current(self, stored: Any, request: gr.Request | None = None) -> gr.File:
        session = self.handlers.session(stored, request)
        with user_errors():
            path = self.service.export(session.owner, session.conversation, _export_folder())
        return gr.File(value=str(path), visible=True)

    def import_archive(
        self, stored: Any, archive: str | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """Import the uploaded zip as a new conversation of this browser (or login), and open it."""
        session = self.handlers.session(stored, request)
        if not archive:
            raise gr.Error(tr("No file arrived; choose the exported .zip again."), print_exception=False)
        with user_errors():
            conv = self.service.import_conversation(session.owner, Path(archive))
        gr.Info(tr("'{title}' was imported.", title=conv.title))
        return self.handlers.switch(stored, conv.id, request)

    def api_export(self, conversation_id: str, request: gr.Request | None = None) -> str:
        with user_errors():
            owner, existing = self.handlers.owners.handle(conversation_id or "", request)
            return str(self.service.export(owner, existing, _export_folder()))

    def api_import(self, archive: str | None, request: gr.Request | None = None) -> str:
        if not archive:
            raise gr.Error(tr("Pass the exported .zip as the archive."), print_exception=False)
        owner = self.handlers.owners.new_owner(request)
        with user_errors():
            conv = self.service.import_conversation(owner, Path(archive))
        return format_handle(owner, conv.id)


def wire_transfer(view: ChatView, handlers: TransferHandlers) -> None:
    transfer = view.transfer
    view_outputs = view.opened
    private: dict[str, Any] = {"api_visibility": "private", "show_progress": "minimal"}
    transfer.export.click(handlers.export_current, [view.browser], [transfer.download], **private)
    transfer.upload.upload(handlers.import_archive, [view.browser, transfer.upload], view_outputs, **private)
    transfer.api_export.click(
        handlers.api_export,
        [transfer.api_conversation_in],
        [transfer.api_archive_out],
        api_name="conversation_export",
        api_description="The conversation (by the conversation_id /chat returned) as a zip: JSON and media.",
        api_visibility="public",
    )
    transfer.api_import.click(
        handlers.api_import,
        [transfer.api_archive_in],
        [transfer.api_conversation_out],
        api_name="conversation_import",
        api_description="Import an exported zip as a new conversation; returns its conversation_id.",
        api_visibility="public",
    )
