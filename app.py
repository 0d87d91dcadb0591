"""Entry point: `python app.py [flags]` (see `--help`): settings, then `bootstrap` builds the rest.

Gradio reads its analytics switch and upload folder from the environment when it is imported, so both are set
here before anything imports it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ixc_app.config import Settings
from ixc_app.entry import run

if TYPE_CHECKING:
    from ixc_app.bootstrap import Services

log = logging.getLogger("ixc_app.app")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start(settings: Settings) -> Services:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(settings.upload_dir.expanduser().resolve())
    from ixc_app import bootstrap

    return bootstrap.start(settings)


def _serve(services: Services) -> None:
    # `docker stop` and service managers send SIGTERM: shut down as on Ctrl+C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from ixc_app.ui import build_app, launch

        settings = services.settings
        log.info("serving on http://%s:%d", settings.host, settings.port)
        launch(build_app(services), settings)
    finally:
        services.close()
        log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, prog="app.py", what="the web app", start=_start, serve=_serve)


if __name__ == "__main__":
    sys.exit(main())
