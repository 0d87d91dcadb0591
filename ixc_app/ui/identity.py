"""Who is asking: owner tokens for browsers, logged-in users and API clients, and the handle an API client
continues with.

Without a login, a browser is identified by a random owner token it keeps in its BrowserState (the
encryption secret reaches the page, so the token is a bearer credential: unguessable, never shown, never
logged). An API client has no browser storage, so the conversation id the `/chat` endpoint returns is a handle
that carries its owner token: whoever holds the handle may continue that conversation, and nobody can reach a
conversation, or list conversations, without the owner's token.

With a login (Gradio's `auth`, or Hugging Face OAuth on a Space), every request carries the user's name, and
the owner is derived from it on the server (`Owners`: a keyed hash with a secret that never leaves the
server), so the same user sees the same history from any browser and any API client. The browser keeps its
own token for when nobody is logged in. A login owner has its own length, so a request that is not logged
in as that user cannot use one, whether it arrives in a forged BrowserState or in a handle.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from ixc_app.i18n import tr

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
HANDLE_SEPARATOR = "."
LOGIN_OWNER_LENGTH = 43
"""An HMAC-SHA256 in unpadded URL-safe base64; random owner tokens (`new_owner`) have 24 characters."""


class UnknownHandle(ValueError):
    """A conversation id the API does not know; one sentence for the client."""


class MissingSession(ValueError):
    def __init__(self) -> None:
        super().__init__(tr("This page has lost its session; reload it to carry on."))


def new_owner() -> str:
    return secrets.token_urlsafe(18)


def is_token(value: object) -> bool:
    return isinstance(value, str) and bool(_TOKEN.match(value))


def is_login_owner(value: object) -> bool:
    return is_token(value) and len(str(value)) == LOGIN_OWNER_LENGTH


@dataclass(frozen=True)
class BrowserSession:
    """What the browser keeps between visits, its own owner token and the conversation it had open
    ('' = new), and the owner of the user logged in on this request, if any ('' = nobody)."""

    browser: str
    conversation: str = ""
    login: str = ""

    @property
    def owner(self) -> str:
        """Whose conversations and articles this request reads and writes."""
        return self.login or self.browser

    @classmethod
    def parse(cls, value: Any) -> BrowserSession:
        """The session a browser sent; `MissingSession` when it is missing or malformed."""
        owner = value.get("owner") if isinstance(value, dict) else None
        if is_token(owner) and not is_login_owner(owner):
            conversation = value.get("conversation")
            return cls(owner, conversation if is_token(conversation) else "")
        raise MissingSession()

    @classmethod
    def from_value(cls, value: Any) -> BrowserSession:
        """The stored session, or one with a new owner for a browser that has none (or a malformed one)."""
        try:
            return cls.parse(value)
        except MissingSession:
            return cls(new_owner())

    def to_value(self) -> dict[str, str]:
        """What goes back into the BrowserState: never the login's owner, which stays on the server."""
        return {"owner": self.browser, "conversation": self.conversation}


def format_handle(owner: str, conversation_id: str) -> str:
    return f"{owner}{HANDLE_SEPARATOR}{conversation_id}"


def parse_handle(handle: str) -> tuple[str, str]:
    """(owner, conversation id) from a handle the API returned earlier."""
    owner, _, conversation_id = handle.strip().partition(HANDLE_SEPARATOR)
    if not (is_token(owner) and is_token(conversation_id)):
        raise UnknownHandle(
            tr(
                "That conversation id is not one this app returned; pass the id from an earlier answer, "
                "or an empty string to start a new conversation."
            )
        )
    return owner, conversation_id


def login_name(request: gr.Request | None, *, hf_oauth: bool) -> str:
    """Who is logged in on this request, as `kind:name` ('' = nobody): Gradio's `auth` sets the request's
    username; Hugging Face OAuth (read only where it is on, see `Settings.hf_oauth`) keeps the profile in the
    signed session cookie, as `gr.OAuthProfile` reads it. The kinds keep a password user and a Hugging Face
    user of the same name apart."""
    if request is None:
        return ""
    if request.username:
        return f"auth:{request.username}"
    if not hf_oauth:
        return ""
    scope = getattr(request.request, "scope", None)
    session = scope.get("session") if isinstance(scope, dict) else None
    info = session.get("oauth_info") if isinstance(session, Mapping) else None
    if not isinstance(info, Mapping):
        return ""
    expires = info.get("expires_at")
    if isinstance(expires, (int, float)) and expires < time.time():
        return ""
    profile = info.get("userinfo")
    name = profile.get("preferred_username") if isinstance(profile, Mapping) else None
    return f"hf:{name}" if isinstance(name, str) and name else ""


class Owners:
    """Resolves the owner of every request, in one place: the login's if someone is logged in, otherwise the
    browser's token (events) or the handle's (API)."""

    def __init__(self, secret: str, *, hf_oauth: bool = False) -> None:
        if not secret:
            raise ValueError("The login owner secret is empty; build the settings with config.prepare.")
        self._key = secret.encode("utf-8")
        self.hf_oauth = hf_oauth

    def of_login(self, name: str) -> str:
        """The owner token of a login (`login_name`): stable across restarts, unguessable without the key."""
        digest = hmac.new(self._key, b"ixc-owner\0" + name.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def login(self, request: gr.Request | None) -> str:
        """The owner of the user logged in on this request; '' when nobody is."""
        name = login_name(request, hf_oauth=self.hf_oauth)
        return self.of_login(name) if name else ""

    def session(self, stored: Any, request: gr.Request | None) -> BrowserSession:
        """The session the page was loaded with; `MissingSession` when the browser sent none."""
        return replace(BrowserSession.parse(stored), login=self.login(request))

    def session_or_new(self, stored: Any, request: gr.Request | None) -> BrowserSession:
        """The session, or one with a new browser token for a page loaded for the first time."""
        return replace(BrowserSession.from_value(stored), login=self.login(request))

    def new_owner(self, request: gr.Request | None) -> str:
        """The owner of a new API conversation or article: the login's, or a new token of its own."""
        return self.login(request) or new_owner()

    def handle(self, handle: str, request: gr.Request | None) -> tuple[str, str]:
        """(owner, id) of a handle an earlier call returned; a login owner's only for that user."""
        owner, item = parse_handle(handle)
        if is_login_owner(owner) and owner != self.login(request):
            raise UnknownHandle(tr("That id was returned to another login; log in as its user to use it."))
        return owner, item
