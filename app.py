"""Entry point: `python app.py [flags]` (see `--help`); the composition root: settings, engine, store, UI.

Gradio reads its analytics switch and upload folder from the environment when it is imported, so both are set
here before anything imports it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ixc_app import __version__
from ixc_app.config import ConfigError, Settings, parse_settings, prepare
from ixc_app.engines.base import Engine, EngineError
from ixc_app.logging_setup import configure_logging

log = logging.getLogger("ixc_app.app")


def build_engine(settings: Settings, model_path: Path) -> Engine:
    """The engine the settings name (only the native one exists yet), loaded from `model_path`."""
    import torch

    from ixc_app.engines.native.engine import NativeEngine

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return NativeEngine.from_pretrained(
        model_path,
        device=settings.device,
        dtype=dtypes[settings.dtype],
        context_length=settings.limits.context_budget,
        cache_budget_bytes=settings.kv_cache_budget_bytes,
        feature_cache_bytes=settings.feature_cache_budget_bytes,
        is_demo_model=settings.is_demo_model,
    )


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

    import torch

    try:
        settings = prepare(settings, cuda_available=torch.cuda.is_available())
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    log.info(
        "ixc-studio %s: model %s on %s (%s)%s",
        __version__,
        settings.model_path,
        settings.device,
        settings.dtype,
        " [demo checkpoint]" if settings.is_demo_model else "",
    )
    from ixc_app.store import Store

    if settings.model_path is None:
        raise RuntimeError("prepare() leaves no settings without a model path")
    try:
        engine = build_engine(settings, settings.model_path)
    except EngineError as exc:
        log.error("%s", exc)
        return 1
    store = Store.from_settings(settings)
    # `docker stop` and service managers send SIGTERM: shut down as on Ctrl+C, the engine first (it ends the
    # streams, which save their answers), then the store.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from ixc_app.ui import build_app, launch

        log.info("serving on http://%s:%d", settings.host, settings.port)
        launch(build_app(settings, engine, store), settings)
    finally:
        engine.close()
        store.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
