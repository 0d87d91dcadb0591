"""The chat composer's states: open for a message, busy until its files are being read, and with Stop while
they are read and the answer is written. The chat handlers and the answer follower both set them."""

from __future__ import annotations

from typing import Any

import gradio as gr


def locked_textbox() -> gr.MultimodalTextbox:
    """The composer while an answer is on its way: no sending, a Stop button."""
    return gr.MultimodalTextbox(interactive=False, submit_btn=False, stop_btn=True)


def busy_textbox() -> gr.MultimodalTextbox:
    """The composer while the message waits for its files to be read: no sending, and no Stop until the
    reading has started (there is nothing to stop before)."""
    return gr.MultimodalTextbox(interactive=False, submit_btn=False, stop_btn=False)


def stop_textbox() -> gr.MultimodalTextbox:
    """The composer once the message is in the chat: emptied, with Stop (for the reading, then the answer)."""
    return gr.MultimodalTextbox(
        value={"text": "", "files": []}, interactive=False, submit_btn=False, stop_btn=True
    )


def unlocked_textbox(value: dict[str, Any] | None = None) -> gr.MultimodalTextbox:
    """The composer ready to send; `value` puts a message back in it (one that was not sent)."""
    if value is None:
        return gr.MultimodalTextbox(interactive=True, submit_btn=True, stop_btn=False)
    return gr.MultimodalTextbox(value=value, interactive=True, submit_btn=True, stop_btn=False)
