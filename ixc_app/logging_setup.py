"""One logging configuration for the whole process, at the level the settings ask for.

Our own loggers (`ixc_app.*`) follow `--log-level`; the HTTP libraries under Gradio log every request at INFO,
so they are held at WARNING unless the level is DEBUG.
"""

from __future__ import annotations

import logging

NOISY_LIBRARIES = ("httpx", "httpcore", "urllib3", "uvicorn.access", "asyncio", "PIL")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, format=FORMAT, force=True)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
