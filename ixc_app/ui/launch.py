"""Serve the app with the defaults a public deployment needs (gradio6.md, "Safe launch defaults").

Nothing is shared through Gradio's tunnel, no run history or monitoring is kept, uploads land in the data
dir's upload cache and are refused over the size limit with a 413 before any handler sees them, and only
validated media and the generated samples are served from disk; the store, the secrets and the checkpoint
never are. Request bodies are capped as they arrive, before Gradio parses them (`RequestLimits`):
an upload may carry a message's worth of files, any other request `REQUEST_BODY_BYTES`.
"""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ixc_app.config import LOGIN_SECRET_FILE_NAME, SECRET_FILE_NAME, Limits, Settings
from ixc_app.logins import load_accounts
from ixc_app.serve.limits import BodySizeLimit
from ixc_app.ui.language import static_values, translations
from ixc_app.ui.samples import samples_folder
from ixc_app.ui.style import FAVICON, STYLESHEET, THEME, logo_css

SESSION_CAPACITY = 1000
"""Gradio keeps a copy of the page's component config for each recent session (browser tab or API client),
tens of kilobytes each; the app keeps nothing else per session, so the oldest beyond this are dropped."""
REQUEST_BODY_BYTES = 8 * 1024**2
"""Any request but an upload: a message of the longest allowed text, or an article being edited, with their
settings, fits many times over."""
UPLOAD_OVERHEAD_BYTES = 1024**2
"""Room for the multipart framing around a message's files."""
UPLOAD_PATH = "/gradio_api/upload"


class RequestLimits:
    """ASGI middleware: 413 for an upload over a message's worth of files, or any other request over
    `REQUEST_BODY_BYTES`, counted as the bytes arrive (`BodySizeLimit`)."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        upload_bytes = limits.max_upload_bytes * limits.max_files_per_message + UPLOAD_OVERHEAD_BYTES
        self.uploads = BodySizeLimit(app, upload_bytes, "send fewer or smaller files")
        self.others = BodySizeLimit(app, REQUEST_BODY_BYTES, "send a shorter message")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upload = scope["type"] == "http" and str(scope.get("path", "")).rstrip("/").endswith(UPLOAD_PATH)
        await (self.uploads if upload else self.others)(scope, receive, send)


def launch(
    demo: gr.Blocks, settings: Settings, *, prevent_thread_lock: bool = False
) -> tuple[FastAPI, str, str | None]:
    """Start serving `demo` on `settings.host:port`; returns Gradio's (app, local URL, share URL). With an
    auth file, every page and API call asks for one of its logins first (Gradio's own login page)."""
    auth = load_accounts(settings.auth_file).pairs() if settings.auth_file is not None else None
    return demo.launch(
        auth=auth,
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        ssr_mode=False,
        enable_monitoring=False,
        run_history=False,
        pwa=False,
        mcp_server=False,
        show_error=False,
        quiet=True,
        footer_links=["api"],
        i18n=translations(static_values(settings.limits)),
        max_file_size=settings.limits.max_upload_bytes,
        state_session_capacity=SESSION_CAPACITY,
        allowed_paths=[str(settings.media_dir), str(samples_folder(settings.data_dir))],
        blocked_paths=[
            str(settings.store_dir),
            str(settings.tiny_checkpoint_dir),
            str(settings.data_dir / SECRET_FILE_NAME),
            str(settings.data_dir / LOGIN_SECRET_FILE_NAME),
        ],
        app_kwargs={"middleware": [Middleware(RequestLimits, limits=settings.limits)]},
        theme=THEME,
        css=logo_css(),
        css_paths=[STYLESHEET],
        favicon_path=str(FAVICON),
        prevent_thread_lock=prevent_thread_lock,
    )
