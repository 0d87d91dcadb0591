"""The settings that choose and reach the engine: `--engine` and the remote and TurboMind engines' flags.

Declared apart from `config.OPTIONS` (which splices them in after `--log-level`) so the settings module
stays small; their values land in `config.Settings` like every other option.
"""

from __future__ import annotations

from ixc_app.options import Choice, Option, positive_float, positive_int

ENGINES = ("native", "remote", "turbomind", "auto")
"""Our own PyTorch engine; an OpenAI-compatible server (LMDeploy's api_server or proxy, ixc_app.serve);
LMDeploy 0.7.3's TurboMind api_server, run by the app; or TurboMind where it can run and native otherwise."""


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"{value} is not a fraction in (0, 1]")
    return value


ENGINE_OPTIONS: tuple[Option, ...] = (
    Option(
        "--engine",
        "engine",
        Choice(ENGINES),
        "native (our PyTorch engine on --model), remote (an OpenAI-compatible server at --engine-url), "
        "turbomind (LMDeploy's TurboMind server on --model, run by the app) or auto (turbomind where its "
        "environment and a GPU are there, native otherwise)",
        "native",
    ),
    Option(
        "--engine-url", "engine_url", str, "the remote engine's server, e.g. http://HOST:23333", "''", "URL"
    ),
    Option("--engine-api-key", "engine_api_key", str, "API key for --engine-url (prefer the variable)", "''"),
    Option("--engine-model", "engine_model", str, "model id at --engine-url; '' = its IXC-2.5 model", "''"),
    Option("--engine-tokenizer", "engine_tokenizer", str, "remote: tokenizer.model; '' = --model's", "''"),
    Option(
        "--engine-connect-timeout",
        "engine_connect_timeout_s",
        positive_float,
        "seconds to wait for the remote server to accept a connection",
        "10",
        "S",
    ),
    Option(
        "--engine-read-timeout",
        "engine_read_timeout_s",
        positive_float,
        "seconds the remote server may stay silent (a long prefill counts) before the answer fails",
        "300",
        "S",
    ),
    Option("--engine-concurrency", "engine_concurrency", positive_int, "remote answers at once", "16", "N"),
    Option(
        "--lmdeploy-python",
        "lmdeploy_python",
        str,
        "turbomind: the python of an LMDeploy 0.7.3 environment; '' = the one scripts/setup-lmdeploy made",
        "''",
        "PATH",
    ),
    Option("--tp", "tp", positive_int, "turbomind: GPUs of its tensor-parallel server", "1", "N"),
    Option(
        "--cache-max-entry-count",
        "cache_max_entry_count",
        fraction,
        "turbomind: share of the GPU memory left after the weights that its KV cache takes",
        "0.8",
        "F",
    ),
)
