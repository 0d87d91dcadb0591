"""The look: a Gradio theme with local fonts only (the page fetches nothing from elsewhere), and the files in
`assets/` (stylesheet, logo, favicon)."""

from __future__ import annotations

import base64
from pathlib import Path

import gradio as gr

THEME = gr.themes.Soft(
    primary_hue="indigo",
    secondary_hue="sky",
    neutral_hue="slate",
    radius_size="lg",
    font=("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"),
)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
"""The static files the page uses: `style.css` (the app's styles), `logo.svg` (the header's logo, inlined as a
data URL so no file route is needed), `favicon.svg`."""
STYLESHEET = ASSETS / "style.css"
FAVICON = ASSETS / "favicon.svg"
LOGO = ASSETS / "logo.svg"


def logo_css() -> str:
    """The rule that hands the logo to `style.css` (as `--app-logo`)."""
    data = base64.b64encode(LOGO.read_bytes()).decode("ascii")
    return f':root {{ --app-logo: url("data:image/svg+xml;base64,{data}"); }}'
