"""The composition root: from settings to a running engine, the store and the use-case services.

This is the only module that knows which engine runs and how it is built; the front ends (`ui/`, `serve/`)
receive `Services` and talk to the engine through the `Engine` protocol alone. Choosing the model is here too:
the real checkpoint when it can run, the tiny demo checkpoint (written on first use) when it cannot, or an
error under `--strict`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.config import TINY_MODEL, ConfigError, Settings, prepare
from ixc_app.engines.base import Engine
from ixc_app.engines.native.layout import looks_like_checkpoint
from ixc_app.media import load_rgb
from ixc_app.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """What runs: a real checkpoint or the demo one, on which device and dtype, and why the demo one."""

    path: Path
    device: str
    dtype: str
    is_demo_model: bool
    reason: str = ""


def choose_model(settings: Settings, cuda_available: bool) -> ModelChoice:
    """Decide what to run here.

    The real model runs when its checkpoint exists and either a CUDA GPU is present or `--device cpu` asks for
    it explicitly (slow, but the user chose it). Otherwise the tiny demo checkpoint runs, unless `--strict`
    makes that an error. `--model tiny` selects the demo checkpoint on purpose: `--strict` does not refuse it.
    """
    if settings.device == "cuda" and not cuda_available:
        raise ConfigError("--device cuda was given but no CUDA GPU is visible; use --device auto or cpu.")
    device = "cuda" if settings.device == "auto" and cuda_available else settings.device
    device = "cpu" if device == "auto" else device
    dtype = settings.dtype if settings.dtype != "auto" else ("bf16" if device == "cuda" else "fp32")
    tiny = settings.tiny_checkpoint_dir
    if settings.model == TINY_MODEL:
        return ModelChoice(tiny, device, dtype, True, "it was selected with --model tiny")
    path = Path(settings.model).expanduser()
    if not looks_like_checkpoint(path):
        reason = f"no checkpoint was found at {path}"
        hint = "download internlm/internlm-xcomposer2d5-7b there or point --model (IXC_MODEL) at it"
    elif device == "cpu" and settings.device == "auto":
        reason = "no CUDA GPU is visible"
        hint = (
            "run on a machine with a CUDA GPU, or pass --device cpu to run the real model on the CPU (slow)"
        )
    else:
        return ModelChoice(path, device, dtype, False)
    if settings.strict:
        raise ConfigError(f"--strict refuses the demo checkpoint because {reason}; {hint}.")
    return ModelChoice(tiny, device, dtype, True, f"{reason}; {hint}")


def ensure_tiny_checkpoint(path: Path) -> None:
    """Write the demo checkpoint on first use; later starts reuse it."""
    if looks_like_checkpoint(path):
        return
    from ixc_app.engines.native.tiny import write_tiny_checkpoint

    log.info("writing the tiny demo checkpoint to %s", path)
    write_tiny_checkpoint(path)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_engine(settings: Settings, choice: ModelChoice) -> Engine:
    """The native engine on the chosen checkpoint, reading images the way uploads are read."""
    import torch

    from ixc_app.engines.native.engine import NativeEngine

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return NativeEngine.from_pretrained(
        choice.path,
        device=choice.device,
        dtype=dtypes[choice.dtype],
        read_image=load_rgb,
        context_length=settings.limits.context_budget,
        cache_budget_bytes=settings.kv_cache_budget_bytes,
        feature_cache_bytes=settings.feature_cache_budget_bytes,
        is_demo_model=choice.is_demo_model,
    )


@dataclass
class Services:
    """Everything a front end needs: the settings, the engine, the store and the chat use cases."""

    settings: Settings
    engine: Engine
    store: Store
    chat: ChatService

    def close(self) -> None:
        """The engine first (it ends the streams, which save their answers), then the store."""
        self.engine.close()
        self.store.close()


def build_services(settings: Settings, engine: Engine) -> Services:
    """The store and the use cases around an engine that is already running (tests pass their own)."""
    store = Store.from_settings(settings)
    chat = ChatService(settings, EngineRunner(engine), store)
    return Services(settings=settings, engine=engine, store=store, chat=chat)


def start(settings: Settings) -> Services:
    """Choose and load the model, then build the services around it.

    `ConfigError` when the model cannot be used (`--strict`); nothing is written to disk before that is
    decided. Then the data dir and the secret are settled (`config.prepare`) and the demo checkpoint is
    written on first use.
    """
    settings = replace(settings, data_dir=settings.data_dir.expanduser().resolve())
    choice = choose_model(settings, cuda_available())
    settings = prepare(settings)
    if choice.is_demo_model:
        ensure_tiny_checkpoint(choice.path)
        log.warning("running the random-weight demo checkpoint because %s", choice.reason)
    log.info(
        "model %s on %s (%s)%s",
        choice.path,
        choice.device,
        choice.dtype,
        " [demo checkpoint]" if choice.is_demo_model else "",
    )
    return build_services(settings, build_engine(settings, choice))
