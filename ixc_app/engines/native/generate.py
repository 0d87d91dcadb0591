"""Choosing the next token of every row of a decode batch, and turning a request's tokens into text.

Logits go through the same steps, in the same order, as Hugging Face `generate` does for the reference
`chat()`: the repetition penalty, then (when sampling) temperature, top-k and top-p (HF's `<=` boundary: the
least likely tokens whose probabilities add up to at most 1 - top_p are dropped), then a draw from the
softmax. Greedy decoding (no sampling, or temperature 0) takes the argmax after the repetition penalty alone,
as HF's greedy search does.

Which tokens the repetition penalty sees: HF penalises every id in `input_ids`. The reference 2.5 `chat()`
passes its prompt as `inputs_embeds`, so `input_ids` start empty and only generated tokens are penalised,
never the prompt. We do the same, and also penalise the tokens of an assistant prefill (the composer's forced
answer start), since they are the start of the answer being continued. Each row keeps the ids it has seen as
a bitmap on the device, so the penalty costs no host work.

A batch is processed on the device without a host sync: rows with a top-k (the reference's 40 or 50) draw
from their top-k candidates only, which gives the same distribution as HF's whole-vocabulary sort at a
fraction of the cost. HF keeps every token tied with the k-th; a row where such a tie is cut (vanishingly
rare) and rows without a top-k go through the whole-vocabulary path. Every row draws from its own seeded
generator, so a request's answer does not depend on what else is in the batch.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ixc_app.engines.base import Delta, FinishReason, GenerationParams
from ixc_app.engines.stops import StopScanner
from ixc_app.ixc.tokenizer import IncrementalDecoder

NEG_INF = float("-inf")


def is_greedy(params: GenerationParams) -> bool:
    return not params.do_sample or params.temperature == 0.0


def new_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A private random stream, so a seed reproduces an answer whatever else the process samples."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


@dataclass
class Row:
    """One sequence being decoded: its settings, the ids it has seen (a [vocab] bool bitmap on the device),
    its random stream and how many tokens it has chosen."""

    params: GenerationParams
    seen: Tensor
    generator: torch.Generator
    generated: int = 0

    @classmethod
    def start(
        cls, params: GenerationParams, seen_ids: Sequence[int], vocab: int, device: torch.device
    ) -> Row:
        seen = torch.zeros(vocab, dtype=torch.bool, device=device)
        if seen_ids:
            seen[torch.tensor(list(seen_ids), device=device)] = True
        return cls(params, seen, new_generator(params.seed, device))


def penalize_(scores: Tensor, seen: Tensor, penalty: Tensor, sparse: bool | None = None) -> Tensor:
    """HF's repetition penalty on [rows, vocab] scores, in place: the seen ids' positive scores are divided
    by the row's penalty, negative ones multiplied.

    On a GPU the whole rows are rewritten (no host sync); on the CPU (`sparse`), where a sync is free and
    every pass over the vocabulary costs, only the seen entries are touched. The values are the same.
    """
    sparse = scores.device.type != "cuda" if sparse is None else sparse
    if sparse:
        rows, ids = seen.nonzero(as_tuple=True)
        values, factor = scores[rows, ids], penalty[rows]
        scores[rows, ids] = torch.where(values < 0, values * factor, values / factor)
        return scores
    factor = penalty[:, None]
    return scores.copy_(torch.where(seen, torch.where(scores < 0, scores * factor, scores / factor), scores))


def apply_top_k(logits: Tensor, top_k: int) -> Tensor:
    """Keep the `top_k` largest logits, and any tied with the k-th (HF's TopKLogitsWarper); 0 keeps all."""
    if top_k <= 0 or top_k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, top_k).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def apply_top_p(logits: Tensor, top_p: float) -> Tensor:
    """Drop the least likely tokens of a [vocab] row whose probabilities add up to at most 1 - top_p; the best
    one stays. Only tokens still in the running are sorted: the others have probability 0 and change
    neither the cumulative sums nor the outcome."""
    if top_p >= 1.0:
        return logits
    candidates = torch.isfinite(logits).nonzero().squeeze(-1)
    sorted_logits, order = torch.sort(logits[candidates], descending=False)
    drop = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= 1.0 - top_p
    drop[-1] = False
    return logits.index_fill(-1, candidates[order[drop]], NEG_INF)


def warp(scores: Tensor, params: GenerationParams) -> Tensor:
    """HF's warpers on one penalised [vocab] row, in HF's order: temperature, top-k, top-p."""
    if params.temperature != 1.0:
        scores = scores / params.temperature
    return apply_top_p(apply_top_k(scores, params.top_k), params.top_p)


def choose_token(scores: Tensor, params: GenerationParams, generator: torch.Generator) -> int:
    """The next token from one row of processed scores."""
    if is_greedy(params):
        return int(torch.argmax(scores, dim=-1))
    return int(torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1, generator=generator))


def top_k_candidates(scores: Tensor, params: Sequence[GenerationParams]) -> tuple[Tensor, Tensor, Tensor]:
    """Temperature, top-k and top-p of penalised [rows, vocab] scores, on each row's top-k candidates only.

    Returns the candidates' scores [rows, K] (dropped ones -inf, in decreasing order), their ids [rows, K],
    and which rows cut a tie with their k-th candidate (HF would keep the tied tokens). Dividing by a positive
    temperature keeps the order, so it is applied to the candidates alone; a tie it creates at the k-th
    candidate is caught the same way.
    """
    device = scores.device
    temperature = torch.tensor([p.temperature for p in params], device=device)
    top_k = torch.tensor([p.top_k for p in params], device=device)
    floor = torch.tensor([1.0 - p.top_p for p in params], device=device)
    values, ids = scores.topk(max(p.top_k for p in params) + 1, dim=-1)
    values = values / temperature[:, None]
    kth = values.gather(1, top_k[:, None] - 1)
    tied = values.gather(1, top_k[:, None]).squeeze(1) == kth.squeeze(1)
    kept = values.masked_fill(torch.arange(values.shape[1], device=device) >= top_k[:, None], NEG_INF)
    ascending = kept.flip(-1)
    drop = ascending.softmax(dim=-1).cumsum(dim=-1) <= floor[:, None]
    drop[:, -1] = False
    return ascending.masked_fill(drop, NEG_INF).flip(-1), ids, tied


def rows_of(scores: Tensor, index: list[int]) -> Tensor:
    """The rows `index` of `scores`, without a copy when that is all of them."""
    if index == list(range(scores.shape[0])):
        return scores
    return scores[torch.tensor(index, device=scores.device)]


def choose(logits: Tensor, rows: Sequence[Row]) -> Tensor:
    """The next token of every row ([rows, vocab] float32 logits in, penalised in place; [rows] ids out, on
    the device)."""
    scores = logits.float()
    if any(r.params.repetition_penalty != 1.0 for r in rows):
        penalty = torch.tensor([r.params.repetition_penalty for r in rows], device=scores.device)
        penalize_(scores, torch.stack([r.seen for r in rows]), penalty)
    tokens = torch.zeros(len(rows), dtype=torch.long, device=scores.device)
    vocab = scores.shape[-1]
    greedy = [i for i, r in enumerate(rows) if is_greedy(r.params)]
    fast = [i for i, r in enumerate(rows) if i not in greedy and 0 < r.params.top_k < vocab - 1]
    exact = [i for i in range(len(rows)) if i not in greedy and i not in fast]
    if greedy:
        tokens[greedy] = rows_of(scores, greedy).argmax(dim=-1)
    if fast:
        kept, ids, tied = top_k_candidates(rows_of(scores, fast), [rows[i].params for i in fast])
        probs = kept.softmax(dim=-1)
        picks = [torch.multinomial(probs[j], 1, generator=rows[i].generator) for j, i in enumerate(fast)]
        tokens[fast] = ids.gather(1, torch.stack(picks)).squeeze(1)
        if bool(tied.any()):
            exact += [i for i, cut in zip(fast, tied.tolist(), strict=True) if cut]
    for i in exact:
        params = rows[i].params
        tokens[i] = choose_token(warp(scores[i], params), params, rows[i].generator)
    return tokens


TokenStream = Generator[int, None, FinishReason]


def stream_text(
    tokens: TokenStream,
    decoder: IncrementalDecoder,
    stop_ids: Collection[int],
    stop_strings: Sequence[str] = (),
) -> Generator[Delta, None, FinishReason]:
    """Text deltas of a token stream: stop tokens are never shown, and no delta ends inside a character.

    The first of `stop_strings` to appear ends the stream before it, as a "stop"; closing `tokens` then stops
    the request, so the engine computes at most one more step for it.
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
