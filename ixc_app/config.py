"""The one settings object: CLI flags over `IXC_*` environment variables over defaults.

Every tunable the app has lives here (model, device, limits, hd_num defaults, data dir bound), so a
deployment is described by one command line or one environment, and `--help` lists it all. Building the
settings is pure (`parse_settings`); `prepare` then does the little I/O settings themselves need: the data
dir, the stable secrets and the auth file's check. Which model and engine run is decided by
`ixc_app.bootstrap`.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ixc_app.engine_options import ENGINE_OPTIONS
from ixc_app.logins import AuthFileError, check_logins
from ixc_app.options import (
    Choice,
    Option,
    boolean,
    format_size,
    keys,
    optional_path,
    parse_size,
    paths,
    port,
    positive_float,
    positive_int,
)

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bf16", "fp16", "fp32")
LOG_LEVELS = ("debug", "info", "warning", "error")
TINY_MODEL = "tiny"
DEFAULT_MODEL = "models/internlm-xcomposer2d5-7b"
TINY_DIR_NAME = "tiny-checkpoint"
SECRET_FILE_NAME = "browser-state-secret"
LOGIN_SECRET_FILE_NAME = "login-owner-secret"
"""Keys the owner token of a logged-in user (`ui.identity.Owners`); unlike the browser-state secret it never
leaves the server, so nobody can work out a user's owner token from their name."""
DEFAULT_KV_CACHE_BUDGET = 4 * 1024**3
"""All KV memory of the native engine (running requests, cached prefixes): 32K positions of the 7B in fp16."""
DEFAULT_FEATURE_CACHE_BUDGET = 1024**3
"""Vision features kept by image: about fifteen 24-crop images of the 7B model in fp16."""


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one sentence saying what to change."""


@dataclass(frozen=True)
class Limits:
    """Input limits, all enforced before a request reaches the GPU queue."""

    max_upload_bytes: int = 200 * 1024**2
    max_files_per_message: int = 8
    max_files_per_conversation: int = 32
    max_image_pixels: int = 50_000_000
    max_video_seconds: float = 600.0
    max_text_chars: int = 20_000
    max_new_tokens: int = 4096
    context_budget: int = 16_384


@dataclass(frozen=True)
class Settings:
    """Everything the app is configured with, as asked for.

    `model` is a checkpoint folder or `tiny`; `device` and `dtype` may be `auto`. What actually runs (the
    checkpoint found or the demo one, the device and dtype chosen) is `bootstrap.ModelChoice`.
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    data_dir: Path = Path("data")
    secret: str = ""
    auth_file: Path | None = None
    hf_oauth: bool = False
    login_secret: str = ""
    limits: Limits = field(default_factory=Limits)
    hd_num_single: int = 24
    hd_num_multi: int = 6
    max_data_bytes: int = 10 * 1024**3
    kv_cache_budget_bytes: int = DEFAULT_KV_CACHE_BUDGET
    feature_cache_budget_bytes: int = DEFAULT_FEATURE_CACHE_BUDGET
    max_batch: int = 8
    prefill_chunk: int = 1024
    compile: bool = False
    strict: bool = False
    log_level: str = "info"
    engine: str = "native"
    engine_url: str = ""
    engine_api_key: str = ""
    engine_model: str = ""
    engine_tokenizer: str = ""
    engine_connect_timeout_s: float = 10.0
    engine_read_timeout_s: float = 300.0
    engine_concurrency: int = 16
    lmdeploy_python: str = ""
    tp: int = 1
    cache_max_entry_count: float = 0.8
    api_keys: tuple[str, ...] = ()
    max_request_bytes: int = 256 * 1024**2
    served_model_name: str = ""
    library_dirs: tuple[Path, ...] = ()

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def compose_dir(self) -> Path:
        return self.data_dir / "compose"

    @property
    def upload_dir(self) -> Path:
        """Gradio's upload cache (GRADIO_TEMP_DIR): raw uploads before validation, cleaned by age."""
        return self.data_dir / "uploads"

    @property
    def tiny_checkpoint_dir(self) -> Path:
        return self.data_dir / TINY_DIR_NAME


_L = Limits()
_S = Settings()
OPTIONS: tuple[Option, ...] = (
    Option(
        "--model",
        "model",
        str,
        "folder of the internlm/internlm-xcomposer2d5-7b checkpoint, or 'tiny' for the random-weight demo",
        _S.model,
        "PATH|tiny",
    ),
    Option("--device", "device", Choice(DEVICES), "where the model runs; auto = CUDA if present", "auto"),
    Option("--dtype", "dtype", Choice(DTYPES), "weight precision; auto = bf16 on CUDA, fp32 on CPU", "auto"),
    Option("--host", "host", str, "address to listen on (0.0.0.0 exposes the app to the network)", _S.host),
    Option("--port", "port", port, "port to listen on", str(_S.port)),
    Option(
        "--data-dir",
        "data_dir",
        Path,
        "where conversations, media, uploads and the demo checkpoint are kept",
        str(_S.data_dir),
        "DIR",
    ),
    Option(
        "--secret",
        "secret",
        str,
        "secret that encrypts the browser's saved state (prefer the variable: flags show in ps); generated "
        "once and kept in the data dir if empty",
        "''",
    ),
    Option(
        "--auth-file",
        "auth_file",
        optional_path,
        "file of user:password lines; when set, the app asks for a login and keeps each user's history under "
        "their name, on any browser",
        "none",
        "PATH",
    ),
    Option(
        "--max-upload-size",
        "max_upload_bytes",
        parse_size,
        "largest accepted upload",
        format_size(_L.max_upload_bytes),
        "SIZE",
    ),
    Option(
        "--max-files-per-message",
        "max_files_per_message",
        positive_int,
        "images and videos in one message",
        str(_L.max_files_per_message),
        "N",
    ),
    Option(
        "--max-files-per-conversation",
        "max_files_per_conversation",
        positive_int,
        "images and videos in one conversation",
        str(_L.max_files_per_conversation),
        "N",
    ),
    Option(
        "--max-image-pixels",
        "max_image_pixels",
        positive_int,
        "largest accepted image, width x height",
        str(_L.max_image_pixels),
        "N",
    ),
    Option(
        "--max-video-seconds",
        "max_video_seconds",
        positive_float,
        "longest accepted video",
        str(_L.max_video_seconds),
        "S",
    ),
    Option(
        "--max-text-chars",
        "max_text_chars",
        positive_int,
        "longest accepted message text",
        str(_L.max_text_chars),
        "N",
    ),
    Option(
        "--max-new-tokens",
        "max_new_tokens",
        positive_int,
        "cap on the answer length a user may ask for",
        str(_L.max_new_tokens),
        "N",
    ),
    Option(
        "--context-budget",
        "context_budget",
        positive_int,
        "prompt tokens (text and image embeddings) plus answer; oldest turns are dropped beyond it",
        str(_L.context_budget),
        "N",
    ),
    Option(
        "--hd-num-single",
        "hd_num_single",
        positive_int,
        "default crop budget of a lone image",
        str(_S.hd_num_single),
        "N",
    ),
    Option(
        "--hd-num-multi",
        "hd_num_multi",
        positive_int,
        "default crop budget of each image when a request holds several",
        str(_S.hd_num_multi),
        "N",
    ),
    Option(
        "--max-data-size",
        "max_data_bytes",
        parse_size,
        "bound on stored conversations and media; the oldest unreferenced media go first",
        format_size(_S.max_data_bytes),
        "SIZE",
    ),
    Option(
        "--kv-cache-budget",
        "kv_cache_budget_bytes",
        parse_size,
        "engine KV memory: running requests and cached prompt prefixes (least recently used go first)",
        format_size(_S.kv_cache_budget_bytes),
        "SIZE",
    ),
    Option(
        "--feature-cache-budget",
        "feature_cache_budget_bytes",
        parse_size,
        "engine memory for encoded images kept for reuse; the least recently used go first",
        format_size(_S.feature_cache_budget_bytes),
        "SIZE",
    ),
    Option("--max-batch", "max_batch", positive_int, "answers decoded together", str(_S.max_batch), "N"),
    Option("--prefill-chunk", "prefill_chunk", positive_int, "positions per prefill pass", "1024", "N"),
    Option("--compile", "compile", boolean, "torch.compile decoding (CUDA only)", "off", is_flag=True),
    Option(
        "--strict",
        "strict",
        boolean,
        "refuse to fall back to the demo checkpoint (exit with an error instead)",
        "off",
        is_flag=True,
    ),
    Option("--log-level", "log_level", Choice(LOG_LEVELS), "logging verbosity", _S.log_level),
    *ENGINE_OPTIONS,
    Option("--api-keys", "api_keys", keys, "serve: keys clients must send, comma-separated", "''", "KEYS"),
    Option(
        "--max-request-size",
        "max_request_bytes",
        parse_size,
        "serve: largest request body, base64 images included",
        format_size(_S.max_request_bytes),
        "SIZE",
    ),
    Option(
        "--served-model-name",
        "served_model_name",
        str,
        "serve: model id it serves as; '' = internlm-xcomposer2d5-7b (-tiny for the demo model)",
        "''",
        "NAME",
    ),
    Option(
        "--library",
        "library_dirs",
        paths,
        "an image folder for the composer's library, read only (repeat, or join folders with ':')",
        "none",
        "DIR",
        action="append",
    ),
)
_LIMIT_FIELDS = {f.name for f in fields(Limits)}


def build_parser(prog: str = "app.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="IXC-2.5 studio: chat with InternLM-XComposer-2.5 about images and videos. Every flag "
        "can also be set by the environment variable named next to it; a flag wins over its variable.",
    )
    for opt in OPTIONS:
        text = f"{opt.help} [env {opt.env}; default {opt.shown_default}]"
        if opt.is_flag:
            parser.add_argument(opt.flag, dest=opt.dest, action=argparse.BooleanOptionalAction, help=text)
        else:
            choices = opt.parse.options if isinstance(opt.parse, Choice) else None
            metavar = "{" + ",".join(choices) + "}" if choices else opt.metavar
            parser.add_argument(opt.flag, dest=opt.dest, metavar=metavar, help=text, action=opt.action)
    return parser


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, *, prog: str = "app.py"
) -> Settings:
    """Settings from flags, then environment, then defaults; a bad value raises `ConfigError` naming it.

    Nothing is touched on disk; `prepare` does that.
    """
    environ = os.environ if environ is None else environ
    args = vars(build_parser(prog).parse_args(argv))
    top: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = args[opt.dest]
        if raw is None and opt.env in environ:
            source, raw = f"{opt.env}={environ[opt.env]!r}", environ[opt.env]
        else:
            source = f"{opt.flag} {raw!r}"
        if raw is None:
            continue
        try:
            value = raw if isinstance(raw, bool) else opt.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source} is not valid: {exc}.") from exc
        (limits if opt.dest in _LIMIT_FIELDS else top)[opt.dest] = value
    # A Space with `hf_oauth: true` in its README front matter gets these from Hugging Face.
    hf_oauth = environ.get("SYSTEM") == "spaces" and bool(environ.get("OAUTH_CLIENT_ID"))
    return Settings(**top, hf_oauth=hf_oauth, limits=Limits(**limits))


def load_or_create_secret(data_dir: Path, name: str = SECRET_FILE_NAME) -> str:
    """A secret of the data dir (the browser-state one unless named), generated once and kept owner-only, so
    saved state and owner tokens survive restarts."""
    path = data_dir / name
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        if secret:
            return secret
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret)
    return secret


def prepare(settings: Settings) -> Settings:
    """Settings with an absolute data dir that exists, both secrets settled, and the logins checked (so a
    bad auth file stops the app before the model loads)."""
    settings = replace(settings, data_dir=settings.data_dir.expanduser().resolve())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        check_logins(settings.auth_file, hf_oauth=settings.hf_oauth)
    except AuthFileError as exc:
        raise ConfigError(str(exc)) from exc
    return replace(
        settings,
        secret=settings.secret or load_or_create_secret(settings.data_dir),
        login_secret=load_or_create_secret(settings.data_dir, LOGIN_SECRET_FILE_NAME),
    )
