"""Who is asking: owner tokens for browsers and API clients, and the handle an API client continues with.

There are no accounts. A browser is identified by a random owner token it keeps in its BrowserState (the
encryption secret reaches the page, so the token is a bearer credential: unguessable, never shown, never
logged). An API client has no browser storage, so the conversation id the `/chat` endpoint returns is a handle
that carries its owner token: whoever holds the handle may continue that conversation, and nobody can reach a
conversation, or list conversations, without the owner's token.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
HANDLE_SEPARATOR = "."


class UnknownHandle(ValueError):
    """A conversation id the API does not know; one sentence for the client."""


class MissingSession(ValueError):
    def __init__(self) -> None:
        super().__init__("This page has lost its session; reload it to carry on.")


def new_owner() -> str:
    return secrets.token_urlsafe(18)


def is_token(value: object) -> bool:
    return isinstance(value, str) and bool(_TOKEN.match(value))


@dataclass(frozen=True)
class BrowserSession:
    """What the browser keeps between visits: its owner token and the conversation it had open ('' = new)."""

    owner: str
    conversation: str = ""

    @classmethod
    def parse(cls, value: Any) -> BrowserSession:
        """The session a browser sent; `MissingSession` when it is missing or malformed."""
        if isinstance(value, dict) and is_token(value.get("owner")):
            conversation = value.get("conversation")
            return cls(value["owner"], conversation if is_token(conversation) else "")
        raise MissingSession()

    @classmethod
    def from_value(cls, value: Any) -> BrowserSession:
        """The stored session, or one with a new owner for a browser that has none (or a malformed one)."""
        try:
            return cls.parse(value)
        except MissingSession:
            return cls(new_owner())

    def to_value(self) -> dict[str, str]:
        return {"owner": self.owner, "conversation": self.conversation}


def format_handle(owner: str, conversation_id: str) -> str:
    return f"{owner}{HANDLE_SEPARATOR}{conversation_id}"


def parse_handle(handle: str) -> tuple[str, str]:
    """(owner, conversation id) from a handle the API returned earlier."""
    owner, _, conversation_id = handle.strip().partition(HANDLE_SEPARATOR)
    if not (is_token(owner) and is_token(conversation_id)):
        raise UnknownHandle(
            "That conversation id is not one this app returned; pass the id from an earlier answer, "
            "or an empty string to start a new conversation."
        )
    return owner, conversation_id
