"""`python -m ixc_app.serve [flags]`: the OpenAI-compatible server over the engine the settings choose."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ixc_app import __version__
from ixc_app.config import ConfigError, parse_settings
from ixc_app.engines.base import EngineError
from ixc_app.logging_setup import configure_logging

log = logging.getLogger("ixc_app.serve")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv, prog="python -m ixc_app.serve")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    log.info("ixc-studio %s, OpenAI-compatible server", __version__)

    from ixc_app import bootstrap

    try:
        settings, engine, config = bootstrap.start_server(settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except EngineError as exc:
        log.error("%s", exc)
        return 1
    import uvicorn

    from ixc_app.serve import create_app

    try:
        log.info("serving %s on http://%s:%d/v1", config.model_name, settings.host, settings.port)
        uvicorn.run(
            create_app(engine, config),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=None,
            timeout_graceful_shutdown=5,
        )
    finally:
        engine.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
