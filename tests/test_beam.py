"""Beam search: HF's rules on scripted scores, then on the tiny checkpoint the engine's beams (cached,
reordered, batched with other requests) against the same search over logits recomputed from scratch."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from conftest import native_engine

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request, StreamItem
from ixc_app.engines.native import NativeModel
from ixc_app.engines.native.beam import BeamSearch, Hypothesis
from ixc_app.engines.native.generate import new_generator
from ixc_app.ixc.prompt import Turn
from ixc_app.ixc.template import build_prompt

STOP = 4
BEAMS = GenerationParams(max_new_tokens=2, do_sample=False, repetition_penalty=1.0, num_beams=2)


def search(
    params: GenerationParams,
    probs: Callable[[tuple[int, ...]], Sequence[float]],
    stop_ids: Sequence[int] = (STOP,),
) -> BeamSearch:
    """Run a search whose next-token probabilities depend on the beam's tokens."""
    beam = BeamSearch(params, stop_ids, new_generator(0))
    while not beam.done:
        logits = torch.tensor([list(probs(tokens)) for tokens in beam.beams]).log()
        beam.step(logits, torch.zeros(logits.shape, dtype=torch.bool))
    return beam


def test_beams_find_the_better_continuation_greedy_misses() -> None:
    def probs(tokens: tuple[int, ...]) -> list[float]:
        if not tokens:
            return [0.5, 0.4, 0.1, 0.0, 0.0]
        return [0.3, 0.3, 0.4, 0.0, 0.0] if tokens[0] == 0 else [0.05, 0.0, 0.95, 0.0, 0.0]

    best = search(BEAMS, probs).best()
    assert best.tokens == (1, 2) and best.stop is None
    assert best.score == pytest.approx(math.log(0.4 * 0.95) / 2)
    greedy = search(dataclasses.replace(BEAMS, num_beams=1), probs).best()
    assert greedy.tokens == (0, 2)


def test_a_stop_token_closes_a_hypothesis_without_it_when_among_the_best() -> None:
    def probs(tokens: tuple[int, ...]) -> list[float]:
        if not tokens:
            return [0.2, 0.2, 0.0, 0.0, 0.6]  # the stop token is the best first token: an empty answer
        return [0.1, 0.1, 0.0, 0.0, 0.8]

    params = dataclasses.replace(BEAMS, max_new_tokens=5)
    beam = search(params, probs)
    assert beam.settled
    best = beam.best()
    assert (best.tokens, best.stop) == ((), STOP)
    assert best.score == pytest.approx(math.log(0.6))

    def late_stop(tokens: tuple[int, ...]) -> list[float]:
        return [0.5, 0.3, 0.15, 0.0, 0.05]  # the stop token ranks 4th of 2 beams x 5: never closes a beam

    late = search(params, late_stop)
    assert late.best().tokens == (0, 0, 0, 0, 0)
    assert late.closed and all(h.stop is None for h in late.closed)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> NativeModel:
    return NativeModel.from_pretrained(tiny_checkpoint)


def recomputed_search(model: NativeModel, request: Request) -> Hypothesis:
    """The same search driven by logits of every beam recomputed from an empty cache each step."""
    prompt = build_prompt(request.turns, model.tokenizer, prefill=request.prefill)
    embeds, _ = model.embed_prompt(prompt, lambda s: torch.empty(0))
    prefill_ids = model.tokenizer.encode(request.prefill, bos=False) if request.prefill else []
    vocab = model.config.vocab_size
    beam = BeamSearch(request.params, model.tokenizer.stop_ids, new_generator(request.params.seed))
    while not beam.done:
        rows, seen = [], torch.zeros(len(beam.beams), vocab, dtype=torch.bool)
        for i, tokens in enumerate(beam.beams):
            sequence = torch.cat([embeds, model.embed_tokens(tokens)]) if tokens else embeds
            rows.append(model.forward(sequence, None, model.new_cache(sequence.shape[0]), last_only=True)[0])
            seen[i, [*prefill_ids, *tokens]] = True
        beam.step(torch.stack(rows), seen)
    return beam.best()


def text_of(items: list[StreamItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, Delta))


def test_cached_beams_equal_beams_over_recomputed_logits_beside_other_requests(
    model: NativeModel,
) -> None:
    params = GenerationParams(max_new_tokens=10, do_sample=False, num_beams=3)
    beams = Request(turns=(Turn("user", "Write an article about tea."),), params=params, prefill="Tea")
    expected = recomputed_search(model, beams)
    greedy = Request(turns=(Turn("user", "Name a colour."),), params=dataclasses.replace(params, num_beams=1))
    greedy_alone = text_of(list(native_engine(model).stream(greedy)))

    engine = native_engine(model)
    outs: dict[str, list[StreamItem]] = {}
    threads = [
        threading.Thread(target=lambda k=k, r=r: outs.__setitem__(k, list(engine.stream(r))))
        for k, r in (("beams", beams), ("greedy", greedy))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert text_of(outs["beams"]) == model.tokenizer.decode(expected.tokens)
    finished = outs["beams"][-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == ("length" if expected.stop is None else "stop")
    assert finished.generated_tokens == len(expected.tokens) + (expected.stop is not None)
    assert text_of(outs["greedy"]) == greedy_alone


def test_a_beam_answer_arrives_whole_at_the_end_and_stop_strings_cut_it(model: NativeModel) -> None:
    engine = native_engine(model)
    params = GenerationParams(max_new_tokens=12, do_sample=False, num_beams=2, repetition_penalty=1.0)
    request = Request(turns=(Turn("user", "Describe the sea."),), params=params)
    items = list(engine.stream(request))
    deltas = [i for i in items if isinstance(i, Delta)]
    full = text_of(items)
    assert len(full) > 4 and items[-1].time_to_first_token_s > 0  # type: ignore[union-attr]
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = list(engine.stream(dataclasses.replace(request, stop=(stop,))))
    assert text_of(cut) == full[: full.find(stop)]
    assert cut[-1].finish_reason == "stop"  # type: ignore[union-attr]
    assert cut[-1].cached_tokens == cut[-1].prompt_tokens - 1  # type: ignore[union-attr]
    assert len(deltas) >= 1


def test_beam_sampling_follows_its_seed(model: NativeModel) -> None:
    engine = native_engine(model)

    def sampled(seed: int) -> str:
        params = GenerationParams(max_new_tokens=8, num_beams=3, top_k=40, seed=seed)
        return text_of(list(engine.stream(Request(turns=(Turn("user", "Tell a story."),), params=params))))

    first = sampled(1)
    assert first and sampled(1) == first
    assert len({sampled(seed) for seed in range(2, 6)} | {first}) > 1
