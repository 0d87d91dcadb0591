"""The composer's typed errors; each message is one sentence a user can act on (the UI shows it as is)."""

from __future__ import annotations


class ComposeRejected(ValueError):
    """A request the composer will not run (bad input or settings)."""


class ComposeFailed(RuntimeError):
    """A step failed; the article was saved with what had been written."""
