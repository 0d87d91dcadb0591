"""`--engine remote`: the app built by `bootstrap` around a remote engine, and the `/chat` API through it.

The remote server is our own (`ixc_app.serve`) over the tiny checkpoint in this process; the same engine also
answers the app in-process, so `/chat` through `--engine remote` must give the in-process answer.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_harness import FAST, app_settings, free_port, start_app, write_mp4, write_png
from conftest import REPO_ROOT
from gradio_client import handle_file
from serve_harness import Served, serve

from ixc_app.bootstrap import server_config, start, start_engine
from ixc_app.config import ConfigError, Limits, parse_settings
from ixc_app.engines.base import Engine, EngineUnavailable
from ixc_app.engines.remote import RemoteEngine
from ixc_app.ixc.template import CHAT_META
from ixc_app.serve import create_app
from ixc_app.serve.inputs import Defaults

MODEL = "internlm-xcomposer2d5-tiny"


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from ixc_app.serve import ServerConfig

    config = ServerConfig(MODEL, Defaults(CHAT_META, 1, 1, Limits()), tmp_path_factory.mktemp("srv") / "work")
    served = serve(create_app(engine, config))
    yield served
    served.stop()


def remote_flags(server: Served, tiny_checkpoint: Path, data: Path) -> list[str]:
    return [
        "--engine",
        "remote",
        "--engine-url",
        server.url,
        "--engine-tokenizer",
        str(tiny_checkpoint / "tokenizer.model"),
        "--data-dir",
        str(data),
    ]


def test_remote_needs_a_url_and_a_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs --engine-url"):
        start_engine(parse_settings(["--engine", "remote", "--data-dir", str(tmp_path)], {}))
    flags = ["--engine", "remote", "--engine-url", "http://127.0.0.1:1", "--model", str(tmp_path / "none")]
    with pytest.raises(ConfigError, match="--engine-tokenizer PATH"):
        start_engine(parse_settings(flags, {}))


def test_a_remote_server_that_is_down_stops_the_start(tmp_path: Path, tiny_checkpoint: Path) -> None:
    flags = [
        "--engine",
        "remote",
        "--engine-url",
        f"http://127.0.0.1:{free_port()}",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    flags += ["--engine-tokenizer", str(tiny_checkpoint / "tokenizer.model")]
    with pytest.raises(EngineUnavailable, match="cannot be reached"):
        start(parse_settings(flags, {}))
    assert not (tmp_path / "d").exists()


def test_the_app_with_a_remote_engine_loads_no_torch(
    server: Served, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\nfrom ixc_app.bootstrap import start\nfrom ixc_app.config import parse_settings\n"
        f"services = start(parse_settings({remote_flags(server, tiny_checkpoint, tmp_path)!r}, {{}}))\n"
        "print(type(services.engine).__name__, 'torch' in sys.modules)\nservices.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["RemoteEngine", "False"], done.stderr[-2000:]


def test_the_served_model_name(engine: Engine, tmp_path: Path) -> None:
    settings = parse_settings(["--data-dir", str(tmp_path)], {})
    assert server_config(settings, engine).model_name == MODEL  # the demo model's
    named = parse_settings(["--served-model-name", "ixc-a", "--api-keys", "k1, k2"], {})
    config = server_config(named, engine)
    assert (config.model_name, config.api_keys) == ("ixc-a", ("k1", "k2"))


def chat(app: Any, message: str, files: tuple[Path, ...] = (), conversation: str = "") -> tuple[str, str]:
    job = app.client().submit(
        message, [handle_file(str(f)) for f in files], conversation, api_name="/chat", seed=11, **FAST
    )
    return tuple(job.result())  # type: ignore[return-value]


def test_chat_through_the_remote_engine_answers_as_in_process(
    server: Served, engine: Engine, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    services = start(parse_settings(remote_flags(server, tiny_checkpoint, tmp_path / "remote"), {}))
    assert isinstance(services.engine, RemoteEngine)
    remote_app = start_app(app_settings(tmp_path / "remote-app"), services.engine)
    local_app = start_app(app_settings(tmp_path / "local-app"), engine)
    try:
        files = (write_png(tmp_path / "a.png", (200, 10, 10)), write_mp4(tmp_path / "clip.mp4"))
        answers = []
        for app in (remote_app, local_app):
            first, conversation = chat(app, "What happens here?", files)
            second, _ = chat(app, "And then?", conversation=conversation)
            answers.append((first, second))
        assert answers[0] == answers[1]
        assert all(answers[0])
    finally:
        remote_app.close()
        local_app.close()
        services.close()
