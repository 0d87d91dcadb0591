"""Scale-out: the real `lmdeploy serve proxy` in front of two `python -m ixc_app.serve` processes.

The proxy runs from its own environment (`ixc_app.lmdeploy_envs` "proxy", a release that reads
AIOHTTP_TIMEOUT), the nodes are our server over the tiny checkpoint, and the app's remote engine points at
the proxy. Requests spread over both nodes; a killed node is dropped by the proxy's heart beat (shortened here
from 90 s to 2 s) and requests keep working; a stream longer than the 100 s that LMDeploy 0.7.3's proxy
allows is not cut (the one slow test; its node is our server over a paced fake engine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from app_harness import free_port
from conftest import REPO_ROOT

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request
from ixc_app.engines.remote import RemoteEngine
from ixc_app.ixc.prompt import Turn
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import load_rgb

MODEL = "internlm-xcomposer2d5-tiny"
HEART_BEAT_S = 2


@dataclass
class Process:
    popen: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start(command: list[str], port: int, log: Path, ready: str, env: dict[str, str] | None = None) -> Process:
    """Start `command` (listening on `port`), logging to `log`, and wait until GET `ready` answers 200."""
    url = f"http://127.0.0.1:{port}"
    out = log.open("w")
    popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
    process = Process(popen, url, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + ready, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.stop()
    raise RuntimeError(f"{command[:4]} did not start: {log.read_text()[-2000:]}")


def start_node(checkpoint: Path, folder: Path, name: str) -> Process:
    port = free_port()
    command = [sys.executable, "-m", "ixc_app.serve", "--model", str(checkpoint), "--device", "cpu"]
    command += ["--port", str(port), "--data-dir", str(folder / name), "--served-model-name", MODEL]
    return start(command, port, folder / f"{name}.log", "/health")


def start_proxy(python: Path, folder: Path, name: str) -> Process:
    port = free_port()
    env = {**os.environ, "LMDEPLOY_CONTROLLER_HEART_BEAT_EXPIRATION": str(HEART_BEAT_S)}
    env.pop("AIOHTTP_TIMEOUT", None)
    command = [str(python.parent / "lmdeploy"), "serve", "proxy", "--server-name", "127.0.0.1"]
    command += [
        "--server-port",
        str(port),
        "--routing-strategy",
        "min_expected_latency",
        "--disable-cache-status",
    ]
    return start(command, port, folder / f"{name}.log", "/v1/models", env)


def add_node(proxy: Process, node: Process) -> None:
    reply = httpx.post(f"{proxy.url}/nodes/add", json={"url": node.url}, timeout=30)
    assert reply.status_code == 200 and "success" in reply.text.lower(), reply.text


def node_status(proxy: Process) -> dict:
    return httpx.get(f"{proxy.url}/nodes/status", timeout=10).json()


@pytest.fixture(scope="module")
def cluster(
    proxy_python: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, list[Process]]]:
    folder = tmp_path_factory.mktemp("cluster")
    started: list[Process] = []
    try:
        started.append(start_proxy(proxy_python, folder, "proxy"))
        for name in ("node-a", "node-b"):
            started.append(start_node(tiny_checkpoint, folder, name))
            add_node(started[0], started[-1])
        yield started[0], started[1:]
    finally:
        for process in reversed(started):
            process.stop()


def request(max_new_tokens: int, seed: int) -> Request:
    params = GenerationParams(max_new_tokens=max_new_tokens, seed=seed)
    return Request(turns=(Turn("user", f"Question {seed}"),), params=params, hd_num_single=1, hd_num_multi=1)


def answer(engine: RemoteEngine, req: Request) -> tuple[str, Finished]:
    items = list(engine.stream(req))
    assert isinstance(items[-1], Finished)
    return "".join(i.text for i in items if isinstance(i, Delta)), items[-1]


def test_requests_spread_over_both_nodes_and_a_killed_node_is_dropped(
    cluster: tuple[Process, list[Process]], tiny_checkpoint: Path
) -> None:
    proxy, nodes = cluster
    engine = RemoteEngine(proxy.url, tokenizer=Tokenizer.from_file(tiny_checkpoint), read_image=load_rgb)
    try:
        assert engine.model == MODEL and "base" in engine.capabilities.modes
        results: list[tuple[str, Finished]] = []
        threads = [
            threading.Thread(target=lambda s=seed: results.append(answer(engine, request(150, s))))
            for seed in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert len(results) == 6
        assert all(text and end.finish_reason in ("stop", "length") for text, end in results)
        served = {url: len(status["latency"]) for url, status in node_status(proxy).items()}
        assert set(served) == {node.url for node in nodes}
        assert all(count >= 1 for count in served.values()), served

        nodes[1].stop()
        deadline = time.monotonic() + 30 * HEART_BEAT_S
        while nodes[1].url in node_status(proxy) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(node_status(proxy)) == [nodes[0].url]
        for seed in range(3):
            text, end = answer(engine, request(20, seed))
            assert text and end.finish_reason in ("stop", "length")
    finally:
        engine.close()


def test_a_stream_longer_than_100_s_is_not_cut(
    proxy_python: Path, real_tokenizer_path: Path, tmp_path: Path
) -> None:
    count, step = 21, 5.0  # 105 s
    port = free_port()
    node = start(
        [sys.executable, str(REPO_ROOT / "tests" / "paced_server.py"), str(port), str(count), str(step)],
        port,
        tmp_path / "paced.log",
        "/health",
        {**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    proxy = start_proxy(proxy_python, tmp_path, "proxy")
    try:
        add_node(proxy, node)
        engine = RemoteEngine(
            proxy.url,
            tokenizer=Tokenizer.from_file(real_tokenizer_path),
            read_image=load_rgb,
            read_timeout_s=30,
        )
        started = time.monotonic()
        text, end = answer(engine, request(100, 1))
        took = time.monotonic() - started
        engine.close()
        assert took > 100
        assert end.finish_reason == "stop"
        assert text.split() == [f"w{i}" for i in range(1, count + 1)]
    finally:
        proxy.stop()
        node.stop()
