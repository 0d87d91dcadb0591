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

from ixc_app import __version__
from ixc_app.config import ConfigError, parse_settings
from ixc_app.engines.base import EngineError
from ixc_app.logging_setup import configure_logging

log = logging.getLogger("ixc_app.app")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(settings.upload_dir.expanduser().resolve())
    log.info("ixc-studio %s", __version__)

    from ixc_app import bootstrap

    try:
        services = bootstrap.start(settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except EngineError as exc:
        log.error("%s", exc)
        return 1
    # `docker stop` and service managers send SIGTERM: shut down as on Ctrl+C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from ixc_app.ui import build_app, launch

        log.info("serving on http://%s:%d", settings.host, settings.port)
        launch(build_app(services), services.settings)
    finally:
        services.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
