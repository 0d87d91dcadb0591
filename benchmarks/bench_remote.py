"""Engines over HTTP on loopback with the tiny checkpoint: what the remote path costs, what scale-out gives.

1. Added time to first token: the remote engine against our server (`ixc_app.serve`, in this process, over
   real HTTP and SSE) minus the native engine in-process, same request (a question; a 448x448 image and a
   question, whose PNG the remote engine encodes once and sends every time), median of interleaved pairs.
2. Aggregate throughput: generated tokens per second of wall time for 8 concurrent conversations versus 1,
   through one server process; then through `lmdeploy serve proxy` (its own environment, made on first use)
   in front of two server processes. On a machine with few cores the two servers share them, so the proxy
   figure shows the distribution overhead more than a speed-up; on a GPU box each node has its own GPU.

Run: .venv/bin/python benchmarks/bench_remote.py [--runs N] [--tokens N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from ixc_app.config import Limits  # noqa: E402
from ixc_app.engines.base import Delta, Engine, Finished, GenerationParams, Request  # noqa: E402
from ixc_app.engines.native.engine import NativeEngine  # noqa: E402
from ixc_app.engines.native.tiny import write_tiny_checkpoint  # noqa: E402
from ixc_app.engines.remote import RemoteEngine  # noqa: E402
from ixc_app.ixc.prompt import ImageRef, Turn  # noqa: E402
from ixc_app.ixc.template import CHAT_META  # noqa: E402
from ixc_app.lmdeploy_envs import SPECS, ensure  # noqa: E402
from ixc_app.media import load_rgb  # noqa: E402
from ixc_app.serve import ServerConfig, create_app  # noqa: E402
from ixc_app.serve.inputs import Defaults  # noqa: E402

MODEL = "internlm-xcomposer2d5-tiny"
REAL_TOKENIZER = ROOT.parent / "shared" / "data" / "internlm2" / "tokenizer.model"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_token_s(engine: Engine, request: Request) -> float:
    """Seconds to the first text; the rest of the answer is cancelled by closing the stream."""
    started = time.perf_counter()
    stream = engine.stream(request)
    try:
        for item in stream:
            if isinstance(item, Delta):
                return time.perf_counter() - started
    finally:
        stream.close()
    raise RuntimeError("no text came")


def serve_app(app: object, port: int) -> Callable[[], None]:
    """Serve `app` on loopback from a thread; returns the function that stops it."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)

    return stop


def tokens(engine: Engine, request: Request) -> int:
    end = list(engine.stream(request))[-1]
    assert isinstance(end, Finished)
    return end.generated_tokens


def throughput(engine: Engine, make: Callable[[int], Request], concurrent: int) -> float:
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: counts.append(tokens(engine, make(i)))) for i in range(concurrent)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def start(command: list[str], url: str, ready: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + ready, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{command[:4]} did not start")


def start_node(checkpoint: Path, data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "ixc_app.serve", "--model", str(checkpoint), "--device", "cpu"]
    command += [
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--served-model-name",
        MODEL,
        "--log-level",
        "warning",
    ]
    url = f"http://127.0.0.1:{port}"
    return start(command, url, "/health"), url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=48, help="tokens per answer in the throughput runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    checkpoint = write_tiny_checkpoint(work / "tiny", REAL_TOKENIZER if REAL_TOKENIZER.is_file() else None)
    image = work / "square.png"
    Image.new("RGB", (448, 448), (30, 120, 200)).save(image)
    picture = ImageRef("square", str(image), 448, 448)
    engine = NativeEngine.from_pretrained(
        checkpoint,
        read_image=load_rgb,
        cache_budget_bytes=256 * 1024**2,
        feature_cache_bytes=0,
        batch_limit=8,
        prefill_chunk=1024,
    )
    ask = Request(
        turns=(Turn("user", "What is in the picture?", (picture,)),),
        params=GenerationParams(max_new_tokens=4, seed=0),
        meta_instruction=CHAT_META,
        hd_num_single=1,
    )

    config = ServerConfig(MODEL, Defaults(CHAT_META, 1, 1, Limits()), work / "requests")
    stop = serve_app(create_app(engine, config), port := free_port())
    remote = RemoteEngine(f"http://127.0.0.1:{port}", tokenizer=engine.tokenizer, read_image=load_rgb)
    question = Request(
        turns=(Turn("user", "What is IXC-2.5?"),), params=GenerationParams(max_new_tokens=4, seed=0)
    )
    for name, request in (("a question", question), ("a 448x448 image and a question", ask)):
        first_token_s(engine, request), first_token_s(remote, request)  # warm up
        pairs = [(first_token_s(engine, request), first_token_s(remote, request)) for _ in range(args.runs)]
        added = sorted(r - n for n, r in pairs)
        print(f"time to first token, {name}, median of {args.runs} interleaved pairs (loopback):")
        print(f"  in-process {statistics.median(n for n, _ in pairs) * 1000:7.1f} ms")
        print(f"  remote     {statistics.median(r for _, r in pairs) * 1000:7.1f} ms")
        quartiles = f"{added[len(added) // 4] * 1000:.1f}..{added[(3 * len(added)) // 4] * 1000:.1f}"
        print(f"  added      {statistics.median(added) * 1000:7.1f} ms (quartiles {quartiles})")
    remote.close()
    stop()
    engine.close()

    def conversation(i: int) -> Request:
        return Request(
            turns=(Turn("user", f"Conversation {i}: tell a story."),),
            params=GenerationParams(max_new_tokens=args.tokens, seed=i),
            meta_instruction=CHAT_META,
        )

    print(f"\naggregate throughput, generated tokens/s ({args.tokens} per answer, seeds differ):")
    node, url = start_node(checkpoint, work / "node-a")
    nodes = [node]
    try:
        one = RemoteEngine(url, tokenizer=engine.tokenizer, read_image=load_rgb)
        throughput(one, conversation, 1)  # warm up
        single = throughput(one, conversation, 1)
        eight = throughput(one, conversation, 8)
        print(f"  one server,  1 conversation : {single:7.1f}")
        print(f"  one server,  8 conversations: {eight:7.1f}  ({eight / single:.2f}x)")
        one.close()
        second, second_url = start_node(checkpoint, work / "node-b")
        nodes.append(second)
        proxy_python = ensure(SPECS["proxy"])
        proxy_port = free_port()
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        env = {k: v for k, v in os.environ.items() if k != "AIOHTTP_TIMEOUT"}
        command = [str(proxy_python.parent / "lmdeploy"), "serve", "proxy", "--server-name", "127.0.0.1"]
        command += [
            "--server-port",
            str(proxy_port),
            "--disable-cache-status",
            "--routing-strategy",
            "min_expected_latency",
        ]
        nodes.append(start(command, proxy_url, "/v1/models", env))
        for node_url in (url, second_url):
            httpx.post(f"{proxy_url}/nodes/add", json={"url": node_url}, timeout=30).raise_for_status()
        proxied = RemoteEngine(proxy_url, tokenizer=engine.tokenizer, read_image=load_rgb)
        throughput(proxied, conversation, 2)  # warm up
        via_proxy = throughput(proxied, conversation, 8)
        print(f"  proxy + two servers, 8 conversations: {via_proxy:7.1f}  ({via_proxy / single:.2f}x)")
        proxied.close()
    finally:
        for process in nodes:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
