"""The look: a Gradio theme with local fonts only (the page fetches nothing from elsewhere), a little CSS."""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Soft(
    primary_hue="indigo",
    secondary_hue="sky",
    neutral_hue="slate",
    radius_size="lg",
    font=("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"),
)

CSS = """
.app-header { align-items: center; gap: 0.75rem; margin-bottom: 0.25rem; }
.app-header h1 { font-size: 1.35rem; margin: 0; }
.app-header p { margin: 0; color: var(--body-text-color-subdued); }
#demo-banner {
  border: 1px solid #f59e0b !important; background: #fffbeb !important;
  border-radius: var(--radius-lg); padding: 0.55rem 0.9rem !important;
}
#demo-banner .prose, #demo-banner .prose p { color: #78350f; margin: 0; }
.dark #demo-banner { background: #3b2a05 !important; }
.dark #demo-banner .prose, .dark #demo-banner .prose p { color: #fde68a; }
.sidebar-column { gap: 0.6rem; }
.conversation-list .wrap { flex-direction: column; gap: 0.25rem; }
.conversation-list label { width: 100%; justify-content: flex-start; }
.conversation-list label span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.chat-column { min-width: 0; }
#chatbot button[aria-label="Share"], #chatbot button[aria-label="Clear"] { display: none; }
#chatbot .message-row:has(.edit-textarea) { align-self: stretch; width: auto; max-width: none; }
#chatbot .message-row:has(.edit-textarea) .flex-wrap,
#chatbot .message-row:has(.edit-textarea) .flex-wrap > div, #chatbot .message:has(> .edit-textarea) {
  width: 100%; max-width: 100%;
}
#chatbot .edit-textarea { width: 100% !important; min-height: 4.5em !important; resize: vertical; }
.hint, .hint p { color: var(--body-text-color-subdued) !important; font-size: var(--text-sm); margin: 0; }
"""
