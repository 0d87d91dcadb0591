"""Sampling and the token-by-token decode loop.

Logits go through the same steps, in the same order, as Hugging Face `generate` does for the reference
`chat()`: the repetition penalty, then (when sampling) temperature, top-k and top-p, then a draw from the
softmax. Greedy decoding (no sampling, or temperature 0) takes the argmax after the repetition penalty alone,
as HF's greedy search does.

Which tokens the repetition penalty sees: HF penalises every id in `input_ids`. The reference 2.5 `chat()`
passes its prompt as `inputs_embeds`, so `input_ids` start empty and only generated tokens are penalised,
never the prompt. We do the same, and also penalise the tokens of an assistant prefill (the composer's forced
answer start), since they are the start of the answer being continued.

The loop checks the cancel event before every forward step and computes nothing while it waits at a yield, so
a set event or a closed generator stops the computation within one step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Generator, Iterable, Sequence
from dataclasses import dataclass

import torch

from ixc_app.engines.base import Delta, FinishReason, GenerationParams
from ixc_app.engines.stops import StopScanner
from ixc_app.ixc.tokenizer import IncrementalDecoder

TokenStream = Generator[int, None, FinishReason]


def apply_repetition_penalty(logits: torch.Tensor, token_ids: Sequence[int], penalty: float) -> torch.Tensor:
    """Divide the positive and multiply the negative logits [vocab] of seen tokens, once per distinct id."""
    if penalty == 1.0 or not token_ids:
        return logits
    ids = torch.tensor(sorted(set(token_ids)), dtype=torch.long, device=logits.device)
    seen = logits.gather(-1, ids)
    return logits.scatter(-1, ids, torch.where(seen < 0, seen * penalty, seen / penalty))


def apply_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the `top_k` largest logits, and any tied with the k-th (HF's TopKLogitsWarper); 0 keeps all."""
    if top_k <= 0 or top_k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, top_k).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def apply_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Drop the least likely tokens whose probabilities add up to at most 1 - top_p; the best one stays.

    Only tokens still in the running are sorted (after top-k, 50 instead of the whole vocabulary): the others
    have probability 0, so they change neither the cumulative sums nor the outcome.
    """
    if top_p >= 1.0:
        return logits
    candidates = torch.isfinite(logits).nonzero().squeeze(-1)
    sorted_logits, order = torch.sort(logits[candidates], descending=False)
    drop = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= 1.0 - top_p
    drop[-1] = False
    return logits.index_fill(-1, candidates[order[drop]], float("-inf"))


def is_greedy(params: GenerationParams) -> bool:
    return not params.do_sample or params.temperature == 0.0


def process_logits(logits: torch.Tensor, seen_ids: Sequence[int], params: GenerationParams) -> torch.Tensor:
    """The scores the next token is chosen from: HF's logits processor, then its warpers, in HF's order."""
    scores = apply_repetition_penalty(logits.float(), seen_ids, params.repetition_penalty)
    if is_greedy(params):
        return scores
    if params.temperature != 1.0:
        scores = scores / params.temperature
    return apply_top_p(apply_top_k(scores, params.top_k), params.top_p)


def new_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A private random stream, so a seed reproduces an answer whatever else the process samples."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def choose_token(scores: torch.Tensor, params: GenerationParams, generator: torch.Generator) -> int:
    if is_greedy(params):
        return int(torch.argmax(scores, dim=-1))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


@dataclass
class DecodeStats:
    """Tokens chosen so far (stop token included) and when the first one was (`time.perf_counter`)."""

    generated: int = 0
    first_token_at: float | None = None


def decode_tokens(
    step: Callable[[int], torch.Tensor],
    logits: torch.Tensor,
    params: GenerationParams,
    *,
    stop_ids: Collection[int],
    seen_ids: Iterable[int] = (),
    cancel: threading.Event | None = None,
    stats: DecodeStats | None = None,
) -> TokenStream:
    """Yield token ids chosen from `logits` (the prefill's last row), then from `step(token)` after each.

    `step` runs the model on the token just chosen and returns the next row of logits. A stop token is
    yielded (the caller does not show it) and ends the loop; the last token of a run is never fed to `step`.
    Returns the finish reason.
    """
    generator = new_generator(params.seed, logits.device)
    stats = stats if stats is not None else DecodeStats()
    seen = list(seen_ids)
    for count in range(1, params.max_new_tokens + 1):
        token = choose_token(process_logits(logits, seen, params), params, generator)
        stats.generated = count
        if stats.first_token_at is None:
            stats.first_token_at = time.perf_counter()
        yield token
        if token in stop_ids:
            return "stop"
        if count == params.max_new_tokens:
            break
        if cancel is not None and cancel.is_set():
            return "cancelled"
        seen.append(token)
        logits = step(token)
    return "length"


def stream_text(
    tokens: TokenStream,
    decoder: IncrementalDecoder,
    stop_ids: Collection[int],
    stop_strings: Sequence[str] = (),
) -> Generator[Delta, None, FinishReason]:
    """Text deltas of a token stream: stop tokens are never shown, and no delta ends inside a character.

    The first of `stop_strings` to appear ends the stream before it, as a "stop"; closing `tokens` then stops
    the decode loop, so no token is computed past it.
    """
    scanner = StopScanner(stop_strings)
    try:
        while True:
            try:
                token = next(tokens)
            except StopIteration as done:
                reason: FinishReason = done.value
                break
            if token not in stop_ids and (text := scanner.push(decoder.push(token))):
                yield Delta(text)
            if scanner.stopped:
                return "stop"
    finally:
        tokens.close()
    if tail := scanner.push(decoder.flush()) + scanner.flush():
        yield Delta(tail)
    return "stop" if scanner.stopped else reason
