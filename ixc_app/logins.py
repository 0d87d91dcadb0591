"""The logins: the accounts of `--auth-file`, and what Hugging Face OAuth needs.

The auth file holds `user:password` lines, so no password is on a command line. It is read when the app
starts (a bad file stops it with one sentence naming the line, never its content), and the accounts go to
Gradio's own login (`launch(auth=...)`), which compares passwords in constant time. Nothing here logs or shows
a password: `Accounts` keeps them out of its repr.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

OAUTH_MODULES = ("authlib", "itsdangerous")
"""What Gradio's OAuth routes import (the `gradio[oauth]` extra, pinned in requirements.txt)."""

COMMENT = "#"


class AuthFileError(ValueError):
    """An auth file that cannot be used; the message is one sentence saying what to change."""


@dataclass(frozen=True)
class Accounts:
    """Usernames and their passwords, in file order."""

    users: tuple[str, ...]
    _passwords: tuple[str, ...] = field(repr=False)

    def pairs(self) -> list[tuple[str, str]]:
        """(username, password) pairs, the form `gr.Blocks.launch(auth=...)` takes."""
        return list(zip(self.users, self._passwords, strict=True))


def parse_accounts(text: str) -> Accounts:
    """Accounts from `user:password` lines; blank lines and lines starting with # are skipped. The username
    ends at the first colon (a password may hold colons); both are trimmed, as Gradio's login form trims the
    username it is sent."""
    users: list[str] = []
    passwords: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(COMMENT):
            continue
        user, colon, password = line.partition(":")
        user, password = user.strip(), password.strip()
        if not (colon and user and password):
            raise AuthFileError(f"line {number} is not of the form user:password")
        if user in users:
            raise AuthFileError(f"line {number} names the user '{user}' a second time")
        users.append(user)
        passwords.append(password)
    if not users:
        raise AuthFileError("it has no user:password line")
    return Accounts(tuple(users), tuple(passwords))


def read_accounts(path: Path) -> Accounts:
    """The accounts of the auth file at `path`; `AuthFileError` when it cannot be read or used."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is no part of the first name
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
        raise AuthFileError(f"it cannot be read ({reason})") from exc
    return parse_accounts(text)


def load_accounts(auth_file: Path) -> Accounts:
    """The auth file's accounts, or `AuthFileError` with the sentence to show (at start, and again at launch,
    which comes after the model has loaded)."""
    try:
        return read_accounts(auth_file)
    except AuthFileError as exc:
        raise AuthFileError(f"The auth file {auth_file} cannot be used: {exc}.") from exc


def check_logins(auth_file: Path | None, *, hf_oauth: bool) -> None:
    """`AuthFileError` with the sentence to show when the auth file, or OAuth on this Space, cannot work."""
    if auth_file is not None:
        load_accounts(auth_file)
    missing = [name for name in OAUTH_MODULES if importlib.util.find_spec(name) is None]
    if hf_oauth and missing:
        raise AuthFileError(
            "The Space has Hugging Face OAuth on (hf_oauth) but its libraries are missing "
            f"({', '.join(missing)}); install requirements.txt."
        )
