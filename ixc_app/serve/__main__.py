"""`python -m ixc_app.serve [flags]`: the OpenAI-compatible server over the engine the settings choose."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ixc_app.config import Settings
from ixc_app.engines.base import Engine
from ixc_app.entry import run
from ixc_app.serve.app import ServerConfig

log = logging.getLogger("ixc_app.serve")


def _start(settings: Settings) -> tuple[Settings, Engine, ServerConfig]:
    from ixc_app import bootstrap

    return bootstrap.start_server(settings)


def _serve(started: tuple[Settings, Engine, ServerConfig]) -> None:
    import uvicorn

    from ixc_app.serve import create_app

    settings, engine, config = started
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


def main(argv: Sequence[str] | None = None) -> int:
    return run(
        argv, prog="python -m ixc_app.serve", what="OpenAI-compatible server", start=_start, serve=_serve
    )


if __name__ == "__main__":
    sys.exit(main())
