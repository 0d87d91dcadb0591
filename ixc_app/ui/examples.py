"""The example messages shown in an empty chat, built on the generated sample media.

A click is resolved by its index into this server-side list: the file paths a browser sends back with an
example selection are never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gradio.components.chatbot import ExampleMessage

from ixc_app.ui.samples import SampleMedia


@dataclass(frozen=True)
class Example:
    label: str
    text: str
    files: tuple[Path, ...]

    def message(self) -> ExampleMessage:
        return {"display_text": self.label, "text": self.text, "files": [str(p) for p in self.files]}


def chat_examples(samples: SampleMedia) -> list[Example]:
    return [
        Example(
            "Read a chart", "Which day had the most visitors, and how many were there?", (samples.chart,)
        ),
        Example(
            "Compare two images",
            "What do these two images have in common, and how do they differ?",
            (samples.chart, samples.landscape),
        ),
        Example(
            "Describe a video", "Describe what happens in this video, second by second.", (samples.clip,)
        ),
    ]
