"""What the app adds on top of the engine, measured at a `gradio_client` against `python app.py --model tiny`.

1. Overhead: time from `submit` to the first streamed character at the client, minus the engine's own time to
   first token (its `Finished` record, read back from the app's store). Target: median under 100 ms. The same
   is measured with a plain SSE client speaking Gradio's queue protocol, which shows how much of it is
   `gradio_client`'s own polling (it sleeps 50 ms whenever no message is waiting).
2. Streaming rate: characters per second at the client (first to last character received), against the engine
   inside the app (its `Finished` record: characters over decoding time) and against the same greedy answer
   streamed by the engine alone in this process. Target: the client gets at least 90% of the engine's rate.
3. No growth: 20 sessions of 10 turns, twice; the server's RSS after each round. Target: within 50 MB. What
   remains is by design and bounded: the engine keeps each conversation's KV cache for fast follow-ups (within
   its cache budget) and Gradio keeps a config copy per recent session (within `SESSION_CAPACITY`).

The server is a separate process (the real entry point, so its RSS is its own); the machine is shared, so
medians and spreads are printed. Run: .venv/bin/python benchmarks/bench_app.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from gradio_client import Client  # noqa: E402

from ixc_app.chat import retry, to_request  # noqa: E402
from ixc_app.config import Settings  # noqa: E402
from ixc_app.engines.base import Delta  # noqa: E402
from ixc_app.ixc.tokenizer import TOKENIZER_FILE, Tokenizer  # noqa: E402
from ixc_app.store import Store  # noqa: E402
from ixc_app.ui.identity import parse_handle  # noqa: E402

GREEDY = {"temperature": 0.0, "seed": 0}
POLL_S = 0.005
"""How often the client looks at the job's outputs: finer than Job's own iterator is needlessly busy (1 ms),
which on a 2-core machine takes CPU from the server being measured."""


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path

    @property
    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--model", "tiny", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}")
        try:
            if httpx.get(f"{url}gradio_api/info", timeout=2).status_code == 200:
                return Server(process, url, data_dir)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError("app.py did not start serving in time")


@dataclass(frozen=True)
class Streamed:
    handle: str
    text: str
    submit_to_first_char_s: float
    first_to_last_char_s: float


def stream(client: Client, message: str, max_new_tokens: int, conversation: str = "") -> Streamed:
    start = time.perf_counter()
    job = client.submit(message, [], conversation, api_name="/chat", max_new_tokens=max_new_tokens, **GREEDY)
    first = last = None
    text = ""
    while True:
        done = job.done()
        outputs = job.outputs()
        answer = outputs[-1][0] if outputs else ""
        now = time.perf_counter()
        if answer and first is None:
            first = now
        if answer != text:
            text, last = answer, now
        if done:
            break
        time.sleep(POLL_S)
    handle = job.result()[1]
    if first is None or last is None:
        raise RuntimeError("the answer was empty")
    return Streamed(handle, text, first - start, last - first)


def raw_first_char_s(url: str, message: str, max_new_tokens: int) -> tuple[float, str]:
    """Submit to first character over Gradio's queue protocol (join, then the SSE stream) with plain httpx, to
    separate what the server takes from what `gradio_client`'s polling adds."""
    config = httpx.get(f"{url}config").json()
    dependency = next(d for d in config["dependencies"] if d.get("api_name") == "chat")
    values = {c["id"]: c["props"].get("value") for c in config["components"]}
    data = [values.get(i) for i in dependency["inputs"]]
    data[:5] = [message, None, "", max_new_tokens, GREEDY["temperature"]]
    session = uuid.uuid4().hex
    with httpx.Client(timeout=60) as http:
        start = time.perf_counter()
        body = {"data": data, "fn_index": dependency["id"], "session_hash": session, "trigger_id": None}
        http.post(f"{url}gradio_api/queue/join", json=body).raise_for_status()
        handle, first = "", None
        with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as events:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                output = (event.get("output") or {}).get("data") or []
                if event.get("msg") == "process_generating" and output:
                    if isinstance(output[0], str):
                        handle = output[1]
                    if output[0] and first is None:
                        first = time.perf_counter() - start
                if event.get("msg") == "process_completed":
                    break
    if first is None:
        raise RuntimeError("the answer was empty")
    return first, handle


def engine_ttft(store: Store, handle: str) -> float:
    conv = store.get(*parse_handle(handle))
    return conv.messages[-1].stats.time_to_first_token_s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_overhead(server: Server, store: Store, runs: int) -> None:
    client_overheads, raw_overheads, ttfts = [], [], []
    for i in range(runs):
        result = stream(Client(server.url, verbose=False), f"Describe picture number {i} in one line.", 16)
        ttft = engine_ttft(store, result.handle)
        ttfts.append(ttft * 1000)
        client_overheads.append((result.submit_to_first_char_s - ttft) * 1000)
        raw_s, handle = raw_first_char_s(server.url, f"Describe photo number {i} in one line.", 16)
        raw_overheads.append((raw_s - engine_ttft(store, handle)) * 1000)
    print(f"1. overhead over the engine ({runs} new conversations each way, 16 tokens, greedy)")
    print(f"   engine time to first token:            median {statistics.median(ttfts):6.1f} ms")
    print(
        f"   app overhead at a gradio_client:       median {statistics.median(client_overheads):6.1f} ms, "
        f"p90 {percentile(client_overheads, 0.9):.1f} ms (target < 100 ms median)"
    )
    print(
        f"   app overhead at a plain SSE client:    median {statistics.median(raw_overheads):6.1f} ms, "
        f"p90 {percentile(raw_overheads, 0.9):.1f} ms (the rest is gradio_client's own polling)"
    )


def measure_rate(server: Server, store: Store, runs: int, max_new_tokens: int) -> None:
    from ixc_app.bootstrap import ModelChoice, build_engine

    settings = Settings(data_dir=server.data_dir)
    checkpoint = settings.tiny_checkpoint_dir
    tokenizer = Tokenizer.from_file(checkpoint / TOKENIZER_FILE)
    engine = build_engine(settings, ModelChoice(checkpoint, "cpu", "fp32", is_demo_model=True))
    client_rates, engine_rates, in_app_rates = [], [], []
    try:
        for i in range(runs):
            result = stream(
                Client(server.url, verbose=False), f"Tell story number {i}, at length.", max_new_tokens
            )
            stored = store.get(*parse_handle(result.handle))
            stats = stored.messages[-1].stats
            in_app_rates.append(len(result.text) / (stats.total_s - stats.time_to_first_token_s))
            conv = retry(stored)
            request = to_request(conv, tokenizer, store.media.path, context_budget=16384).request
            first = last = None
            text = ""
            for item in engine.stream(request):
                if isinstance(item, Delta) and item.text:
                    last = time.perf_counter()
                    first = first or last
                    text += item.text
            if text != result.text:
                raise RuntimeError("the engine's greedy answer differs from the one the client streamed")
            client_rates.append(len(text) / result.first_to_last_char_s)
            engine_rates.append(len(text) / (last - first))
    finally:
        engine.close()
    alone = statistics.median(c / e for c, e in zip(client_rates, engine_rates, strict=True))
    in_app = statistics.median(c / e for c, e in zip(client_rates, in_app_rates, strict=True))
    print(f"2. streaming rate ({runs} answers of {max_new_tokens} tokens, greedy, same text at both ends)")
    print(f"   engine alone, in this process:      median {statistics.median(engine_rates):6.0f} chars/s")
    print(f"   engine inside the app (its record): median {statistics.median(in_app_rates):6.0f} chars/s")
    print(f"   at the client:                      median {statistics.median(client_rates):6.0f} chars/s")
    print(f"   client / engine inside the app: median {in_app:.1%} (target >= 90%)")
    print(f"   client / engine alone:          median {alone:.1%}")


def measure_growth(server: Server, sessions: int, turns: int) -> None:
    warm = Client(server.url, verbose=False)
    handle = stream(warm, "Warm up.", 8).handle
    stream(warm, "Again.", 8, handle)
    rss = [server.rss_mb]
    for _ in range(2):
        for s in range(sessions):
            client = Client(server.url, verbose=False)
            handle = ""
            for t in range(turns):
                handle = stream(client, f"Session {s}, turn {t}: what do you see?", 8, handle).handle
        rss.append(server.rss_mb)
    print(f"3. memory ({sessions} sessions x {turns} turns, done twice)")
    print(f"   server RSS after warm-up:   {rss[0]:7.1f} MB")
    growth = rss[1] - rss[0]
    print(f"   after {sessions * turns} turns:  {rss[1]:7.1f} MB ({growth:+.1f} MB, target within 50 MB)")
    print(
        f"   after {2 * sessions * turns} turns:           {rss[2]:7.1f} MB ({rss[2] - rss[1]:+.1f} MB more)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="conversations for the overhead figure")
    parser.add_argument("--rate-runs", type=int, default=5, help="answers for the streaming-rate figure")
    parser.add_argument("--rate-tokens", type=int, default=1500, help="answer length for the streaming rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ixc-bench-app-") as tmp:
        data_dir = Path(tmp) / "data"
        server = start_server(data_dir)
        try:
            store = Store.from_settings(Settings(data_dir=data_dir))
            print(f"python app.py --model tiny, {psutil.cpu_count()} CPUs, server pid {server.process.pid}")
            measure_overhead(server, store, args.runs)
            measure_rate(server, store, args.rate_runs, args.rate_tokens)
            measure_growth(server, sessions=20, turns=10)
            store.close()
        finally:
            server.process.terminate()
            server.process.wait(timeout=30)


if __name__ == "__main__":
    main()
