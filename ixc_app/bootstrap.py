"""The composition root: from settings to a running engine, the store and the use-case services.

This is the only module that knows which engine runs and how it is built (`--engine`: `ENGINE_STARTERS`;
`auto` picks TurboMind where it can run, native otherwise, and logs why); the front ends (`ui/`, `serve/`)
receive `Services` or the engine and talk to it through the `Engine` protocol alone. Choosing the model is
here too: a Hub repo named as the model is downloaded first (`hub`), then the real checkpoint runs when it
can, the tiny demo checkpoint (written on first use) when it cannot, or an error under `--strict`.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ixc_app.chat.preferences import Preferences
from ixc_app.chat.runner import EngineRunner
from ixc_app.chat.service import ChatService
from ixc_app.compose.article_store import ArticleStore
from ixc_app.compose.library import Library
from ixc_app.compose.service import ComposeService
from ixc_app.config import TINY_MODEL, ConfigError, Settings, prepare
from ixc_app.engines.base import Engine
from ixc_app.engines.native.layout import looks_like_checkpoint
from ixc_app.hub import fetch_model
from ixc_app.ixc.template import CHAT_META
from ixc_app.ixc.tokenizer import TOKENIZER_FILE, Tokenizer, TokenizerError
from ixc_app.lmdeploy_envs import SPECS, find
from ixc_app.media import load_rgb
from ixc_app.serve import ServerConfig
from ixc_app.serve.inputs import Defaults
from ixc_app.store import Store

log = logging.getLogger(__name__)

PREFERENCES_DIR_NAME = "preferences"
"""Under the data dir: each owner's last chat settings (`chat.preferences`)."""


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
        hint = (
            "download internlm/internlm-xcomposer2d5-7b there, point --model (IXC_MODEL) at it, or set "
            "IXC_MODEL=internlm/internlm-xcomposer2d5-7b to download it into the data dir"
        )
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

    if settings.compile and choice.device != "cuda":
        log.warning("--compile only applies on a CUDA GPU; the decode step runs uncompiled on the CPU")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return NativeEngine.from_pretrained(
        choice.path,
        device=choice.device,
        dtype=dtypes[choice.dtype],
        read_image=load_rgb,
        context_length=settings.limits.context_budget,
        cache_budget_bytes=settings.kv_cache_budget_bytes,
        feature_cache_bytes=settings.feature_cache_budget_bytes,
        batch_limit=settings.max_batch,
        prefill_chunk=settings.prefill_chunk,
        compile=settings.compile and choice.device == "cuda",
        is_demo_model=choice.is_demo_model,
    )


@dataclass
class Services:
    """Everything a front end needs: the settings, the engine, the store and the use cases."""

    settings: Settings
    engine: Engine
    store: Store
    chat: ChatService
    compose: ComposeService

    def close(self) -> None:
        """The engine first (it ends the streams, which save their answers), then the stores."""
        self.engine.close()
        self.compose.store.close()
        self.chat.preferences.close()
        self.store.close()


def build_services(settings: Settings, engine: Engine) -> Services:
    """The store and the use cases around an engine that is already running (tests pass their own)."""
    store = Store.from_settings(settings)
    runner = EngineRunner(engine)
    chat = ChatService(settings, runner, store, Preferences(settings.data_dir / PREFERENCES_DIR_NAME))
    articles = ArticleStore(settings.compose_dir, store.media)
    store.add_reference_source(articles.referenced_media)
    library = Library(articles, store.media, settings.library_dirs, settings.limits)
    threading.Thread(target=library.scan_folders, name="library-scan", daemon=True).start()
    compose = ComposeService(settings, runner, articles, library)
    return Services(settings=settings, engine=engine, store=store, chat=chat, compose=compose)


def build_remote_engine(settings: Settings) -> Engine:
    """The remote engine on `--engine-url`, counting tokens with the model's own tokenizer."""
    from ixc_app.engines.remote import RemoteEngine

    if not settings.engine_url:
        raise ConfigError(
            "--engine remote needs --engine-url (IXC_ENGINE_URL): the address of an OpenAI-compatible "
            "IXC-2.5 server, for example http://127.0.0.1:23333."
        )
    model = (
        settings.tiny_checkpoint_dir if settings.model == TINY_MODEL else Path(settings.model).expanduser()
    )
    path = (
        Path(settings.engine_tokenizer).expanduser() if settings.engine_tokenizer else model / TOKENIZER_FILE
    )
    try:
        tokenizer = Tokenizer.from_file(path)
    except TokenizerError as exc:
        raise ConfigError(
            f"--engine remote counts tokens with the model's tokenizer, but none is readable at {path}; pass "
            "--engine-tokenizer PATH (the tokenizer.model of internlm/internlm-xcomposer2d5-7b)."
        ) from exc
    return RemoteEngine(
        settings.engine_url,
        tokenizer=tokenizer,
        read_image=load_rgb,
        model=settings.engine_model,
        api_key=settings.engine_api_key,
        connect_timeout_s=settings.engine_connect_timeout_s,
        read_timeout_s=settings.engine_read_timeout_s,
        max_concurrency=settings.engine_concurrency,
        context_length=settings.limits.context_budget,
    )


def _start_native(settings: Settings) -> tuple[Settings, Engine]:
    """Choose and load the model: `ConfigError` under `--strict` before anything is written to disk."""
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
    return settings, build_engine(settings, choice)


def _start_remote(settings: Settings) -> tuple[Settings, Engine]:
    """The remote server is checked (reachable, key accepted, IXC-2.5) before the data dir is settled."""
    engine = build_remote_engine(settings)
    return prepare(settings), engine


def lmdeploy_python(settings: Settings) -> Path | None:
    """LMDeploy 0.7.3's python: `--lmdeploy-python`, or the environment `scripts/setup-lmdeploy` made."""
    if settings.lmdeploy_python:
        path = Path(settings.lmdeploy_python).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"--lmdeploy-python {path} is not a file; point it at the python of an LMDeploy 0.7.3 "
                "environment, or leave it empty to use the one scripts/setup-lmdeploy makes."
            )
        return path
    return find(SPECS["engine"])


def choose_engine(settings: Settings, cuda: bool, python: Path | None) -> tuple[str, str]:
    """What `--engine auto` runs, and why: TurboMind needs its environment, a CUDA GPU and the real
    checkpoint; anything missing makes it the native engine."""
    model = Path(settings.model).expanduser()
    if python is None:
        return "native", "no LMDeploy environment was found (scripts/setup-lmdeploy makes it)"
    if not cuda:
        return "native", "no CUDA GPU is visible (TurboMind runs on CUDA only)"
    if settings.model == TINY_MODEL or not looks_like_checkpoint(model):
        return "native", f"there is no checkpoint at {model} for TurboMind to serve"
    return "turbomind", f"the LMDeploy environment ({python}) and a CUDA GPU are there"


def _start_auto(settings: Settings) -> tuple[Settings, Engine]:
    engine, reason = choose_engine(settings, cuda_available(), lmdeploy_python(settings))
    log.info("--engine auto runs the %s engine because %s", engine, reason)
    return ENGINE_STARTERS[engine](replace(settings, engine=engine))


def _start_turbomind(settings: Settings) -> tuple[Settings, Engine]:
    """LMDeploy's TurboMind api_server on the real checkpoint, run and supervised by the app."""
    from ixc_app.engines.turbomind import ApiServerOptions, start_turbomind

    python = lmdeploy_python(settings)
    if python is None:
        raise ConfigError(
            "--engine turbomind needs LMDeploy 0.7.3's environment: make it with scripts/setup-lmdeploy "
            "(make lmdeploy-env), or pass --lmdeploy-python PATH."
        )
    if not cuda_available():
        raise ConfigError("--engine turbomind needs a CUDA GPU and none is visible; use --engine native.")
    model = Path(settings.model).expanduser().resolve()
    if settings.model == TINY_MODEL or not looks_like_checkpoint(model):
        raise ConfigError(
            f"--engine turbomind serves the real checkpoint and there is none at {model}; point --model "
            "(IXC_MODEL) at internlm/internlm-xcomposer2d5-7b's folder, or name the repo to download it."
        )
    settings = prepare(settings)
    options = ApiServerOptions(
        python=python,
        model=model,
        model_name=SERVED_NAME,
        session_len=settings.limits.context_budget,
        cache_max_entry_count=settings.cache_max_entry_count,
        tp=settings.tp,
        port=_free_loopback_port(),
        log_level=settings.log_level,
    )
    engine = start_turbomind(
        options,
        tokenizer=Tokenizer.from_file(model / TOKENIZER_FILE),
        read_image=load_rgb,
        log_path=settings.data_dir / "logs" / "turbomind.log",
        connect_timeout_s=settings.engine_connect_timeout_s,
        read_timeout_s=settings.engine_read_timeout_s,
        max_concurrency=settings.engine_concurrency,
    )
    log.info("turbomind engine: %s on %s (write mode: none; the composer writes in base mode)", model, python)
    return settings, engine


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ENGINE_STARTERS: dict[str, Callable[[Settings], tuple[Settings, Engine]]] = {
    "native": _start_native,
    "remote": _start_remote,
    "turbomind": _start_turbomind,
    "auto": _start_auto,
}
"""How each `--engine` starts; a new engine kind is one more entry (and one more `engine_options.ENGINES`
name)."""


def start_engine(settings: Settings) -> tuple[Settings, Engine]:
    """The engine `--engine` names, running, and the settings prepared (`config.prepare`) around it.

    A Hub repo named as the model is downloaded first, where the model could run (`hub.fetch_model`); the
    remote engine only reads a tokenizer from `--model`, so it downloads nothing."""
    settings = replace(settings, data_dir=settings.data_dir.expanduser().resolve())
    if settings.engine != "remote":
        settings = fetch_model(settings, can_run=settings.device == "cpu" or cuda_available())
    return ENGINE_STARTERS[settings.engine](settings)


def start(settings: Settings) -> Services:
    """Start the engine, then build the services around it (the app)."""
    settings, engine = start_engine(settings)
    return build_services(settings, engine)


DEMO_SERVED_NAME = "internlm-xcomposer2d5-tiny"
SERVED_NAME = "internlm-xcomposer2d5-7b"


def server_config(settings: Settings, engine: Engine) -> ServerConfig:
    """What `python -m ixc_app.serve` serves as, with the chat's default meta instruction and limits."""
    demo = engine.capabilities.is_demo_model
    return ServerConfig(
        model_name=settings.served_model_name or (DEMO_SERVED_NAME if demo else SERVED_NAME),
        defaults=Defaults(CHAT_META, settings.hd_num_single, settings.hd_num_multi, settings.limits),
        work_dir=settings.data_dir / "serve-requests",
        api_keys=settings.api_keys,
        max_request_bytes=settings.max_request_bytes,
    )


def start_server(settings: Settings) -> tuple[Settings, Engine, ServerConfig]:
    """Start the engine for `python -m ixc_app.serve` and say how the server presents it."""
    settings, engine = start_engine(settings)
    return settings, engine, server_config(settings, engine)
