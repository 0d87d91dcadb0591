"""The web UI: Gradio 6 Blocks, event wiring and the public API (`/chat`, `/compose`, `/article_edit`,
`/article_export`). No torch and no engine implementation
here: the engine arrives inside `bootstrap.Services`, behind the `Engine` protocol.

`build_app(services)` returns the Blocks; `launch(demo, settings)` serves it with safe defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from ixc_app.ui.api import ChatApi
from ixc_app.ui.chat_events import wire_chat
from ixc_app.ui.chat_handlers import ChatHandlers
from ixc_app.ui.compose_api import ComposeApi
from ixc_app.ui.compose_events import wire_composer
from ixc_app.ui.compose_handlers import ComposeHandlers
from ixc_app.ui.compose_layout import composer_tab
from ixc_app.ui.examples import chat_examples
from ixc_app.ui.identity import Owners
from ixc_app.ui.language import wire_language, word
from ixc_app.ui.launch import launch
from ixc_app.ui.layout import chat_tab, header
from ixc_app.ui.samples import ensure_samples, samples_folder
from ixc_app.ui.transfer import TransferHandlers, wire_transfer
from ixc_app.ui.uploads import forget_served_copy

if TYPE_CHECKING:
    from ixc_app.bootstrap import Services

__all__ = ["build_app", "launch"]

QUEUE_MAX_SIZE = 64
UPLOAD_CACHE_SWEEP = (3600, 24 * 3600)
"""Every hour, delete raw uploads older than a day (validated copies live in the media store)."""


def build_app(services: Services) -> gr.Blocks:
    settings, service, capabilities = services.settings, services.chat, services.engine.capabilities
    # Gradio keeps uploads, and copies of the files it serves, in GRADIO_TEMP_DIR, read from the environment
    # whenever it needs it (also while the components below are built). app.py points it at the data dir's
    # upload folder before Gradio is imported; where nothing has set it, that folder is used from here on.
    Path(os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.upload_dir))).mkdir(
        parents=True, exist_ok=True
    )
    examples = chat_examples(ensure_samples(samples_folder(settings.data_dir)))
    owners = Owners(settings.login_secret, hf_oauth=settings.hf_oauth)
    handlers = ChatHandlers(service, examples, owners)
    services.store.add_deletion_listener(forget_served_copy)
    with gr.Blocks(title="IXC-2.5 Studio", delete_cache=UPLOAD_CACHE_SWEEP, analytics_enabled=False) as demo:
        switch = header(capabilities.is_demo_model, hf_oauth=settings.hf_oauth)
        with gr.Tabs():
            with gr.Tab(word("app.tab_chat"), id="chat") as chat:
                view = chat_tab(settings, service.default_settings(), examples)
            composer = services.compose
            compose_view = composer_tab(
                composer.default_settings(), settings.limits.max_new_tokens, composer.planner.engine_notes()
            )
        wire_language(demo, switch, {chat: "app.tab_chat", compose_view.tab: "ui.tab"})
        wire_chat(demo, view, handlers, ChatApi(service, owners), capabilities.max_concurrency)
        wire_transfer(view, TransferHandlers(handlers))
        compose_handlers = ComposeHandlers(composer, owners)
        wire_composer(
            view.browser, compose_view, compose_handlers, ComposeApi(composer, compose_handlers),
            capabilities.max_concurrency,
        )  # fmt: skip
    _keep_private(demo)
    demo.queue(max_size=QUEUE_MAX_SIZE)
    return demo


def _keep_private(demo: gr.Blocks) -> None:
    """Every internal event is private (`ui.chat_events`); `gr.LoginButton` adds its own page-load check as
    a public endpoint, which is made private too."""
    for fn in demo.fns.values():
        if fn.name == "_check_login_status":
            fn.api_visibility = "private"
