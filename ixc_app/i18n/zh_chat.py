"""The Chinese for the sentences the server says about the chat (`ixc_app.i18n.tr`): English template ->
Chinese template, with the same `{placeholders}`. `tests/test_i18n.py` checks that
every `tr` call has its entry."""

from __future__ import annotations

CHAT_ZH: dict[str, str] = {}
