"""The TurboMind engine: LMDeploy 0.7.3's `api_server` in its own environment, run and supervised by the app.

LMDeploy 0.7.3 is the last release that applies IXC-2.5's Partial LoRA, and its pins (torch <= 2.6,
numpy < 2, transformers 4.x) cannot share an environment with gradio 6 (spec section 6), so the server runs
from the python of a separate environment (`requirements-lmdeploy.txt`, made by `scripts/setup-lmdeploy`).
The app starts it on a loopback port with a key made for this run, waits for `/health`, restarts it if it
dies and stops it on exit (`engines.managed`, `supervisor`); requests go through the remote engine.

The command always names the chat template (LMDeploy matches templates by folder name otherwise, which fails
for renamed or merged checkpoints) and a model id, so `/v1/models` lists the IXC-2.5 name the remote engine
looks for. One server serves one variant: the base checkpoint is base mode only, so the composer writes in
base mode with its visible note (see the README, "Deployment", for a write-mode server behind the proxy).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ixc_app.engines.base import ImageReader
from ixc_app.engines.managed import ManagedEngine, start_managed
from ixc_app.engines.remote import RemoteEngine
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.supervisor import ProcessSpec

CHAT_TEMPLATE = "internlm-xcomposer2d5"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ApiServerOptions:
    """What the `lmdeploy serve api_server` command is built from.

    `session_len` is prompt plus answer tokens per request (the app's context budget); `cache_max_entry_count`
    the share of free GPU memory TurboMind gives its KV cache; `tp` the GPUs of one tensor-parallel server.
    """

    python: Path
    model: Path
    model_name: str
    session_len: int
    cache_max_entry_count: float
    tp: int
    port: int
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    log_level: str = "warning"


def api_server_command(options: ApiServerOptions) -> tuple[str, ...]:
    """The command line that starts the server (checked against 0.7.3's own parser in the contract tests)."""
    return (
        str(options.python),
        "-m",
        "lmdeploy",
        "serve",
        "api_server",
        str(options.model),
        "--backend",
        "turbomind",
        "--chat-template",
        CHAT_TEMPLATE,
        "--model-name",
        options.model_name,
        "--session-len",
        str(options.session_len),
        "--cache-max-entry-count",
        f"{options.cache_max_entry_count:g}",
        "--tp",
        str(options.tp),
        "--server-name",
        LOOPBACK,
        "--server-port",
        str(options.port),
        "--api-keys",
        options.api_key,
        "--log-level",
        options.log_level.upper(),
    )


def start_turbomind(
    options: ApiServerOptions,
    *,
    tokenizer: Tokenizer,
    read_image: ImageReader,
    log_path: Path,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 300.0,
    max_concurrency: int = 16,
    env: Mapping[str, str] | None = None,
) -> ManagedEngine:
    """Start the server, wait until it serves (loading a 7B model takes minutes; progress goes to the log),
    and return the engine over it. `EngineUnavailable` when it never serves."""
    spec = ProcessSpec(
        name="LMDeploy api_server (TurboMind)",
        command=api_server_command(options),
        health_url=f"http://{LOOPBACK}:{options.port}/health",
        log_path=log_path,
        env={**os.environ, **(env or {})},
    )

    def connect(url: str) -> RemoteEngine:
        return RemoteEngine(
            url,
            tokenizer=tokenizer,
            read_image=read_image,
            model=options.model_name,
            api_key=options.api_key,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_concurrency=max_concurrency,
            context_length=options.session_len,
        )

    return start_managed(spec, connect, "turbomind")
