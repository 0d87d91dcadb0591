"""Each owner's last chat settings, kept under the data dir so a new conversation starts from them.

A user who sets a longer answer or their own system prompt once should not have to set it again for every
conversation, nor after a reload or a server restart. The settings are keyed by owner like conversations, so
they follow the owner wherever the owner is recognised; the JSON is `ChatSettings.to_dict`, read back with
`ChatSettings.from_dict` so settings saved by another version still load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import diskcache

from ixc_app.chat.conversation import ChatSettings

log = logging.getLogger(__name__)

_SETTINGS = "settings"


class Preferences:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache = diskcache.Cache(str(self.root))

    def close(self) -> None:
        self._cache.close()

    def settings(self, owner: str, fallback: ChatSettings) -> ChatSettings:
        """The owner's last settings, or `fallback` for an owner who never changed any."""
        raw = self._cache.get((_SETTINGS, owner))
        if raw is None:
            return fallback
        try:
            return ChatSettings.from_dict(json.loads(raw))
        except (TypeError, ValueError):
            log.warning("the saved chat settings of an owner could not be read; using the defaults")
            return fallback

    def remember(self, owner: str, settings: ChatSettings) -> None:
        self._cache.set((_SETTINGS, owner), json.dumps(settings.to_dict(), ensure_ascii=False))
