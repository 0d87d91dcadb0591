"""The conversation list as a drawer: beside the chat on a wide screen, folded away on a phone.

On a phone the header, the banner and a full list above the chat would push the composer below the first
screen, so the list lives in Gradio's `gr.Sidebar`, which slides over the page and folds away. Gradio opens
a sidebar on every screen and, below 768 px, as wide as the screen; the page's load event therefore folds it
on narrow screens, and picking a conversation or starting a new one folds it again there, so the chat is what
the user sees next. Only the browser knows its width, so all of this runs in the page (`js`, no server call).
"""

from __future__ import annotations

import gradio as gr

from ixc_app.ui.language import word

DRAWER_ID = "conversation-drawer"
NARROW_MAX_PX = 768
"""Gradio's own breakpoint: below it an open sidebar covers the whole width."""

FOLD_ON_NARROW_SCREENS = f"""
(...args) => {{
  if (window.innerWidth <= {NARROW_MAX_PX}) {{
    const drawer = document.querySelector("#{DRAWER_ID}");
    if (drawer && drawer.classList.contains("open")) drawer.querySelector(".toggle-button")?.click();
  }}
  return args;
}}
"""
"""Fold the drawer if the screen is narrow; passes the event's inputs through unchanged."""


def conversation_drawer() -> gr.Sidebar:
    return gr.Sidebar(label=word("chat.conversations"), open=True, width=280, elem_id=DRAWER_ID)


def wire_drawer(demo: gr.Blocks, closers: list[gr.Button | gr.Radio]) -> None:
    """Fold the drawer on narrow screens when the page loads and after each of `closers` is used."""
    demo.load(None, None, None, js=FOLD_ON_NARROW_SCREENS)
    for component in closers:
        trigger = component.click if isinstance(component, gr.Button) else component.input
        trigger(None, None, None, js=FOLD_ON_NARROW_SCREENS)
