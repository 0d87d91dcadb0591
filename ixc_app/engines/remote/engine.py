"""The remote engine: `Engine.stream` over an OpenAI-compatible `/v1/chat/completions` with IXC-2.5 behind it.

That server is LMDeploy 0.7.3's api_server, LMDeploy's proxy in front of many servers, or our own
`python -m ixc_app.serve`. Requests are stateless (every turn sends the whole conversation), streamed over SSE
with `httpx`. What the engine promises and how:

- At start-up `/health` and `/v1/models` are checked, so a missing server, a refused key or a server of
  another model is one clear sentence before the app serves anyone. The modes offered are the model ids the
  server lists (`NAME`, `NAME-write`, `NAME-web`; see `engines.wire`).
- A connection that fails before the first byte is tried once more; after that, every failure is a typed
  error with one sentence (`replies`), never an empty answer. The read timeout bounds the silence between
  two pieces of the reply, not the whole answer.
- Cancelling (the event, or closing the stream) shuts the socket down at once, even while the server is
  still prefilling; LMDeploy and our server stop generating when their client goes away.
- Stop strings are sent to the server and also enforced here (`StopScanner`): LMDeploy only stops on
  single-token stop words, and drops the whole token that holds one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ixc_app.engines.base import (
    BadRequest,
    Delta,
    EngineCapabilities,
    EngineError,
    EngineUnavailable,
    Finished,
    FinishReason,
    ImageReader,
    Request,
    StreamItem,
    TimedOut,
)
from ixc_app.engines.remote.messages import DataUrls, chat_body
from ixc_app.engines.remote.replies import (
    body_error,
    broke_off,
    http_error,
    not_openai,
    read_stream,
    stream_failed,
)
from ixc_app.engines.stops import StopScanner
from ixc_app.engines.wire import MODE_SUFFIXES, modes_served
from ixc_app.i18n import tr
from ixc_app.ixc.tokenizer import Tokenizer

log = logging.getLogger(__name__)

IXC_NAME_HINT = "xcomposer"
"""Without --engine-model, a model id naming this (any case) is taken for IXC-2.5."""
RETRY_DELAY_S = 0.5
CANCEL_POLL_S = 0.05


@dataclass(frozen=True)
class ServerInfo:
    """What `/v1/models` says: the base model id, its modes, and what our own server adds about itself."""

    model: str
    modes: frozenset[str]
    is_demo_model: bool = False
    context_length: int | None = None


class RemoteEngine:
    """`Engine` over an OpenAI-compatible server; see the module docstring.

    `tokenizer` is the model's own (the app counts tokens for its budgets before sending); `context_length`
    is what the app assumes the server holds, unless our own server reports its own.
    """

    def __init__(
        self,
        url: str,
        *,
        tokenizer: Tokenizer,
        read_image: ImageReader,
        model: str = "",
        api_key: str = "",
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 300.0,
        max_concurrency: int = 16,
        context_length: int = 16384,
    ) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self.tokenizer = tokenizer
        self.read_timeout_s = read_timeout_s
        self.data_urls = DataUrls(read_image)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(
                connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=None
            ),
            limits=httpx.Limits(
                max_connections=max_concurrency + 2, max_keepalive_connections=max_concurrency
            ),
        )
        try:
            self.info = self._discover(model)
        except BaseException:
            self._client.close()
            raise
        self.model = self.info.model
        self.capabilities = EngineCapabilities(
            name="remote",
            modes=self.info.modes,
            supports_prefill=True,
            supports_beam_search=False,
            supports_stop=True,
            prefix_cache=False,
            max_concurrency=max_concurrency,
            context_length=self.info.context_length or context_length,
            is_demo_model=self.info.is_demo_model,
        )
        log.info(
            "remote engine: %s at %s, modes %s", self.model, self.url, ", ".join(sorted(self.info.modes))
        )

    def close(self) -> None:
        self._client.close()

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        started = time.perf_counter()
        self._check(request)
        try:
            body = chat_body(request, self.model, self.data_urls)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        cancel = cancel or threading.Event()
        scanner = StopScanner(request.stop)
        first: float | None = None
        generated, prompt_tokens, reason = 0, 0, "cancelled"
        with self._open(body, cancel) as response:
            if response is None:
                yield Finished("cancelled", 0, 0, total_s=time.perf_counter() - started)
                return
            try:
                for chunk in read_stream(response.iter_lines(), self.url, body["model"]):
                    prompt_tokens = chunk.prompt_tokens or prompt_tokens
                    generated = chunk.completion_tokens or generated + bool(chunk.text)
                    if chunk.finish_reason == "error":
                        raise stream_failed(chunk, self.url)
                    shown = scanner.push(chunk.text)
                    if shown:
                        first = first or time.perf_counter()
                        yield Delta(shown)
                    if scanner.stopped or chunk.finish_reason:
                        reason = "stop" if scanner.stopped else _finish_reason(chunk.finish_reason)
                        break
            except (httpx.TransportError, httpx.StreamError, EngineError) as exc:
                # A cancelled read ends in whatever error the shut-down socket gives: it is no failure.
                if cancel.is_set():
                    reason = "cancelled"
                elif isinstance(exc, EngineError):
                    raise
                else:
                    raise self._transport_error(exc) from exc
            tail = scanner.flush() if reason != "cancelled" else ""
            if tail:
                yield Delta(tail)
        yield Finished(
            finish_reason=reason,  # type: ignore[arg-type]
            prompt_tokens=prompt_tokens,
            generated_tokens=generated,
            time_to_first_token_s=(first - started) if first else 0.0,
            total_s=time.perf_counter() - started,
        )

    def _check(self, request: Request) -> None:
        if request.mode not in self.capabilities.modes:
            offered = ", ".join(sorted(self.capabilities.modes))
            raise BadRequest(
                tr(
                    "The model server at {url} has no {mode!r} mode (it serves {offered}); start a server of "
                    "the {mode} variant named {variant}.",
                    url=self.url,
                    mode=request.mode,
                    offered=offered,
                    variant=self.model + MODE_SUFFIXES[request.mode],
                )
            )
        if request.params.max_new_tokens < 1:
            raise BadRequest(tr("max_new_tokens must be at least 1; ask for at least one token."))
        if request.params.num_beams != 1:
            raise BadRequest(
                tr("The model server has no beam search; ask for one beam (sampling or greedy).")
            )

    @contextlib.contextmanager
    def _open(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[httpx.Response | None]:
        """The streaming response, status checked; None when cancelled first. The socket is shut down as
        soon as `cancel` is set, and the response closed however the caller leaves."""
        response = self._send(body, cancel)
        if response is None:
            yield None
            return
        done = threading.Event()
        watcher = threading.Thread(target=_shut_on_cancel, args=(response, cancel, done), daemon=True)
        watcher.start()
        try:
            if response.status_code != 200:
                raise http_error(response.status_code, response.read(), self.url, body["model"])
            if "text/event-stream" not in response.headers.get("content-type", ""):
                error = body_error(_json_or_none(response.read()), self.url, body["model"])
                raise error or not_openai(self.url)
            yield response
        finally:
            done.set()
            response.close()

    def _send(self, body: dict[str, Any], cancel: threading.Event) -> httpx.Response | None:
        """Send the request, once more if the connection fails before the first byte."""
        for attempt in (1, 2):
            if cancel.is_set():
                return None
            request = self._client.build_request("POST", "/v1/chat/completions", json=body)
            try:
                return self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt == 2:
                    raise self._transport_error(exc) from exc
                log.warning("connecting to %s failed (%s); trying once more", self.url, exc)
                time.sleep(RETRY_DELAY_S)
            except httpx.TransportError as exc:
                raise self._transport_error(exc) from exc
        return None

    def _transport_error(self, exc: Exception) -> Exception:
        if isinstance(exc, httpx.ReadTimeout):
            return TimedOut(
                tr(
                    "The model server at {url} sent nothing for {seconds:g} s; try again, or raise "
                    "--engine-read-timeout if long prompts need more time.",
                    url=self.url,
                    seconds=self.read_timeout_s,
                )
            )
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return EngineUnavailable(
                tr(
                    "The model server at {url} cannot be reached; start it, or point --engine-url at a "
                    "running one.",
                    url=self.url,
                )
            )
        return broke_off(self.url)

    def _discover(self, model: str) -> ServerInfo:
        """The model to ask for, from `/health` and `/v1/models`; `EngineUnavailable` with the reason."""
        health = self._get("/health")
        if health.status_code not in (200, 404):  # LMDeploy's proxy has no /health
            raise http_error(health.status_code, health.content, self.url, model or "?")
        listing = self._get("/v1/models")
        if listing.status_code != 200:
            raise http_error(listing.status_code, listing.content, self.url, model or "?")
        try:
            cards = {card["id"]: card for card in listing.json()["data"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise not_openai(self.url) from exc
        base = model or self._only_ixc_model(list(cards))
        modes = modes_served(base, list(cards))
        if not modes:
            raise EngineUnavailable(
                f"The server at {self.url} serves {', '.join(cards) or 'no model'}, not {base!r}; point "
                "--engine-url at an IXC-2.5 server or name its model with --engine-model."
            )
        ours = (cards.get(base) or {}).get("ixc_studio") or {}
        return ServerInfo(
            model=base,
            modes=modes,
            is_demo_model=bool(ours.get("demo", False)),
            context_length=ours.get("context_length"),
        )

    def _only_ixc_model(self, ids: list[str]) -> str:
        bases = {_base_of(i) for i in ids if IXC_NAME_HINT in i.lower()}
        if len(bases) == 1:
            return bases.pop()
        if not bases:
            raise EngineUnavailable(
                f"The server at {self.url} serves {', '.join(ids) or 'no model'}, not "
                "InternLM-XComposer-2.5; point --engine-url at an IXC-2.5 server or name its model with "
                "--engine-model."
            )
        raise EngineUnavailable(
            f"The server at {self.url} serves several IXC-2.5 models ({', '.join(sorted(bases))}); "
            "choose one with --engine-model."
        )

    def _get(self, path: str) -> httpx.Response:
        try:
            return self._client.get(path)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc


def _base_of(model: str) -> str:
    for suffix in MODE_SUFFIXES.values():
        if suffix and model.endswith(suffix):
            return model.removesuffix(suffix)
    return model


def _finish_reason(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _shut_on_cancel(response: httpx.Response, cancel: threading.Event, done: threading.Event) -> None:
    """Shut the response's socket down when `cancel` is set, which wakes a read blocked on it."""
    while not done.is_set():
        if cancel.wait(CANCEL_POLL_S):
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
