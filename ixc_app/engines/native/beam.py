"""Beam search for one request, as Hugging Face `generate` does it for the reference composer (`num_beams`).

Each step takes the beams' next-token logits [beams, vocab]: log-softmax, the repetition penalty on those
log-probabilities (HF applies its logits processors there), plus each beam's running score. Without sampling
the best `max(2, 1 + stop ids) * beams` continuations are taken; with sampling (HF's beam sampling) the
temperature, top-k and top-p warpers act on the summed scores of each beam and as many continuations are
drawn without replacement, then sorted. Continuations are then read in order, as HF's `BeamSearchScorer`
does: a stop token among the first `beams` of them closes a hypothesis (the stop token is not part of it),
other continuations become the next beams until there are `beams` of them. A hypothesis scores its summed
log-probabilities divided by its length ** `length_penalty`; the search ends when `beams` hypotheses are
closed and no open beam can beat the worst of them (HF's default, not early stopping), or at the length limit,
where the open beams are closed too. The best hypothesis is the answer.

Lengths count generated tokens (the reference passes its prompt as embeddings, so HF sees no prompt ids), and
never less than one, where HF would divide by zero.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ixc_app.engines.base import GenerationParams
from ixc_app.engines.native.generate import is_greedy, penalize_, top_k_candidates, warp


@dataclass(frozen=True)
class Hypothesis:
    score: float
    tokens: tuple[int, ...]
    stop: int | None
    """The stop token that closed it (not part of `tokens`); None where the length limit did."""


@dataclass(frozen=True)
class BeamStep:
    """The beams after a step: which old beam each continues and the token it adds."""

    parents: list[int]
    tokens: list[int]


@dataclass
class BeamSearch:
    params: GenerationParams
    stop_ids: Collection[int]
    generator: torch.Generator
    beams: list[tuple[int, ...]] = field(default_factory=lambda: [()])
    scores: list[float] = field(default_factory=lambda: [0.0])
    closed: list[Hypothesis] = field(default_factory=list)
    done: bool = False
    settled: bool = False
    """Ended because no open beam could beat the closed hypotheses (the open ones are then not considered)."""

    @property
    def width(self) -> int:
        return self.params.num_beams

    def _normalised(self, score: float, length: int) -> float:
        return score / max(length, 1) ** self.params.length_penalty

    def _close(self, tokens: tuple[int, ...], score: float, stop: int | None) -> None:
        hypothesis = Hypothesis(self._normalised(score, len(tokens)), tokens, stop)
        if len(self.closed) < self.width or hypothesis.score > min(h.score for h in self.closed):
            self.closed.append(hypothesis)
            if len(self.closed) > self.width:
                self.closed.remove(min(self.closed, key=lambda h: h.score))

    def step(self, logits: Tensor, seen: Tensor) -> BeamStep:
        """Advance with the open beams' logits [len(beams), vocab] and seen-id bitmaps."""
        params, n = self.params, self.width
        logp = torch.log_softmax(logits.float(), dim=-1)
        if params.repetition_penalty != 1.0:
            penalty = torch.full((logp.shape[0],), params.repetition_penalty, device=logp.device)
            penalize_(logp, seen, penalty)
        totals = logp + torch.tensor(self.scores, device=logp.device)[:, None]
        vocab, wanted = totals.shape[-1], max(2, 1 + len(self.stop_ids)) * n
        if is_greedy(params):
            values, picks = totals.flatten().topk(min(wanted, totals.numel()))
        else:
            values, picks = self._sample(totals, wanted)
        parents, tokens = (picks // vocab).tolist(), (picks % vocab).tolist()
        scores = values.tolist()
        generated = len(self.beams[0])
        next_beams: list[tuple[int, tuple[int, ...], float]] = []
        for rank, (parent, token, score) in enumerate(zip(parents, tokens, scores, strict=True)):
            if token in self.stop_ids:
                if rank < n:
                    self._close(self.beams[parent], score, stop=token)
            else:
                next_beams.append((parent, (*self.beams[parent], token), score))
            if len(next_beams) == n:
                break
        while len(next_beams) < n:  # too few candidates survived the warpers (HF would raise)
            next_beams.append(next_beams[0])
        best = max(scores)
        if len(self.closed) >= n and min(h.score for h in self.closed) >= self._normalised(best, generated):
            self.done = self.settled = True
        self.beams = [tokens for _, tokens, _ in next_beams]
        self.scores = [score for _, _, score in next_beams]
        if len(self.beams[0]) >= params.max_new_tokens:
            self.done = True
        return BeamStep([parent for parent, _, _ in next_beams], [t[-1] for _, t, _ in next_beams])

    def _sample(self, totals: Tensor, wanted: int) -> tuple[Tensor, Tensor]:
        """HF's beam sampling: warp each beam's summed scores, draw continuations, best first."""
        params, (rows, vocab) = self.params, totals.shape
        candidates = top_k_candidates(totals, [params] * rows) if 0 < params.top_k < vocab - 1 else None
        if candidates is not None and not bool(candidates[2].any()):
            kept, ids, _ = candidates
            flat_ids = (ids + torch.arange(rows, device=ids.device)[:, None] * vocab).flatten()
            warped = kept.flatten()
        else:
            warped = torch.stack([warp(row, params) for row in totals]).flatten()
            flat_ids = torch.arange(warped.numel(), device=warped.device)
        probs = warped.softmax(dim=-1)
        count = min(wanted, int((probs > 0).sum()))
        drawn = torch.multinomial(probs, count, replacement=False, generator=self.generator)
        values, order = warped[drawn].sort(descending=True)
        return values, flat_ids[drawn][order]

    def best(self) -> Hypothesis:
        """The answer: the best closed hypothesis (open beams too where the length ended the search)."""
        if not self.settled:
            for tokens, score in zip(self.beams, self.scores, strict=True):
                self._close(tokens, score, stop=None)
        return max(self.closed, key=lambda h: h.score)
