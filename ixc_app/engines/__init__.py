"""Engines run a prompt through IXC-2.5. They never import gradio."""
