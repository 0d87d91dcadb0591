"""Which conversation each browser tab shows, as the server last showed it.

Gradio cancels an event from the page: when a tab opens another conversation, the cancel travels as a request
of its own and arrives after the new view, while the answer being followed in the old one keeps yielding
until it does, and those yields would paint the old conversation over the new one. So every event that shows
a conversation records it here under the tab's session hash (one per page load), and whatever follows an
answer stops showing it, at its next step, once the tab shows something else. Tabs are forgotten oldest
first beyond `capacity`; a tab the server does not know (forgotten, or a call without a Gradio request) is
taken to show whatever asks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import gradio as gr

TABS_KEPT = 10_000


class ShownConversations:
    def __init__(self, capacity: int = TABS_KEPT) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._shown: OrderedDict[str, str] = OrderedDict()

    def show(self, request: gr.Request | None, conversation_id: str) -> None:
        """The tab now shows `conversation_id` ('' = a new, empty conversation)."""
        tab = tab_of(request)
        if not tab:
            return
        with self._lock:
            self._shown[tab] = conversation_id
            self._shown.move_to_end(tab)
            while len(self._shown) > self.capacity:
                self._shown.popitem(last=False)

    def shows(self, request: gr.Request | None, conversation_id: str) -> bool:
        tab = tab_of(request)
        with self._lock:
            return tab not in self._shown or self._shown[tab] == conversation_id

    def __len__(self) -> int:
        return len(self._shown)


def tab_of(request: gr.Request | None) -> str:
    """The tab a request comes from: Gradio's session hash, one per page load ('' = none)."""
    return (getattr(request, "session_hash", None) or "") if request is not None else ""
