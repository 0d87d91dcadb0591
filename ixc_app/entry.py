"""How the entry points run: settings, then start, then serve, with one set of exit codes.

`python app.py` and `python -m ixc_app.serve` differ only in what they start and how they serve it. Exit code
2: a setting cannot be used (said in one sentence); 1: the engine cannot start (one sentence); 0: served and
stopped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from ixc_app import __version__
from ixc_app.config import ConfigError, Settings, parse_settings
from ixc_app.engines.base import EngineError
from ixc_app.logging_setup import configure_logging
from ixc_app.logins import AuthFileError

T = TypeVar("T")
log = logging.getLogger("ixc_app")


def run(
    argv: Sequence[str] | None,
    *,
    prog: str,
    what: str,
    start: Callable[[Settings], T],
    serve: Callable[[T], None],
) -> int:
    try:
        settings = parse_settings(argv, prog=prog)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    log.info("ixc-studio %s, %s", __version__, what)
    try:
        started = start(settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except EngineError as exc:
        log.error("%s", exc)
        return 1
    try:
        serve(started)
    except AuthFileError as exc:  # the auth file is read again at launch, after the model has loaded
        log.error("%s", exc)
        return 2
    return 0
