"""The one thread that owns the model: admission, chunked prefill, batched decoding, the prefix cache.

Each round the scheduler admits waiting jobs (while the batch has rows left and the KV budget holds their
caches; cached prefixes are evicted to make room, and a job always runs when it would run alone), drops jobs
that were cancelled or closed, prefills one chunk of the oldest job still prefilling, then runs one decode
step for every decoding job at once. So a new prompt, however long, delays the others' streams by one chunk
per token, and Stop takes effect within one chunk or one step.

Every job reserves caches for its whole prompt and answer when it is admitted, so a running answer never runs
out of room. What a job computed is offered to the prefix cache as its prefill progresses and when it ends
(its prompt and the answer tokens it fed back), within what the budget leaves beside the running jobs.

A failure in one job's prefill fails that job; a failure in a decode step fails the jobs of that step; the
thread itself carries on. `reload` swaps the model between rounds once the running jobs have finished, and
starts the caches afresh. A job's prefill runs in the context of the stream that submitted it (`Job.context`),
so what it refuses is said in the language of the request that asked.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Collection

import torch

from ixc_app.engines.base import EngineError, EngineUnavailable, FinishReason, ImageReader
from ixc_app.engines.native import generate
from ixc_app.engines.native.beam import BeamSearch
from ixc_app.engines.native.generate import Row, rows_of
from ixc_app.engines.native.jobs import Done, Failed, Job, Started, Tokens
from ixc_app.engines.native.model import NativeModel, task_rows
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.engines.native.prefix_cache import BLOCK, FeatureCache, PrefixCache, image_key
from ixc_app.i18n import tr
from ixc_app.ixc.prompt import ImageSegment

log = logging.getLogger(__name__)


def shut_down() -> EngineUnavailable:
    return EngineUnavailable(tr("The model engine has been shut down; restart the app to chat again."))


class Scheduler:
    """Runs jobs on `model` (see the module docstring); `steps_run` counts forward passes (prefill chunks
    and decode steps), `prefill_chunks_run` the prefill chunks alone."""

    def __init__(
        self,
        model: NativeModel,
        *,
        batch_limit: int,
        prefill_chunk: int,
        kv_budget_bytes: int,
        prefix: PrefixCache,
        features: FeatureCache,
        read_image: ImageReader,
        stop_ids: Collection[int],
    ) -> None:
        self.model = model
        self.batch_limit, self.prefill_chunk, self.budget = batch_limit, prefill_chunk, kv_budget_bytes
        self.prefix, self.features, self.read_image = prefix, features, read_image
        self.stop_ids = frozenset(stop_ids)
        self.steps_run = 0
        self.prefill_chunks_run = 0
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._reserved = 0
        self._closed = False
        self._reload: tuple[NativeModel, threading.Event] | None = None
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="native-engine", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def idle(self) -> bool:
        """No job waiting or running."""
        with self._wake:
            return not self._waiting and not self._running

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._closed:
                raise shut_down()
            self._waiting.append(job)
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=60)

    def reload(self, model: NativeModel) -> None:
        """Serve `model` from now on: waits for the running jobs to finish, then clears both caches."""
        swapped = threading.Event()
        with self._wake:
            self._reload = (model, swapped)
            self._wake.notify()
        swapped.wait()

    def _run(self) -> None:
        try:
            while self._next_round():
                self._round()
        finally:
            with self._wake:
                for job in (*self._running, *self._waiting):
                    job.events.put(Failed(job.context.run(shut_down)))
                self._running.clear()
                self._waiting.clear()

    def _next_round(self) -> bool:
        """Wait for work and admit what fits; False once closed."""
        with self._wake:
            while not self._closed:
                if self._reload is not None and not self._running:
                    self._swap(*self._reload)
                if self._reload is None:
                    self._admit()
                if self._running:
                    return True
                self._wake.wait()
            return False

    def _swap(self, model: NativeModel, swapped: threading.Event) -> None:
        self.model, self._reload = model, None
        self.prefix.clear()
        self.features.clear()
        swapped.set()

    def _admit(self) -> None:
        for job in [j for j in self._waiting if j.stopped]:
            self._waiting.remove(job)
            job.events.put(Done("cancelled"))
        per_position = self.model.kv_bytes_per_position()
        while self._waiting:
            job = self._waiting[0]
            need = job.width * job.capacity * per_position
            rows = sum(j.width for j in self._running)
            if self._running and (rows + job.width > self.batch_limit or self._reserved + need > self.budget):
                return
            self._waiting.popleft()
            self.prefix.evict(max(0, self.budget - self._reserved - need))
            try:
                job.caches = self.model.new_caches(job.capacity, job.width)
            except torch.OutOfMemoryError as exc:
                job.events.put(Failed(exc))
                continue
            job.generation, job.reserved = self.prefix.generation, need
            self._reserved += need
            self._running.append(job)

    def _round(self) -> None:
        for job in [j for j in self._running if j.stopped]:
            self._finish(job, "cancelled")
        prefilling = next((j for j in self._running if not j.decoding), None)
        if prefilling is not None:
            self._guarded([prefilling], lambda: prefilling.context.run(self._prefill_chunk, prefilling))
        decoding = [j for j in self._running if j.decoding]
        if decoding:
            self._guarded(decoding, lambda: self._decode(decoding))

    def _guarded(self, jobs: list[Job], work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:
            if not isinstance(exc, EngineError):
                log.exception("the native engine failed on %d request(s)", len(jobs))
            for job in jobs:
                if job in self._running:
                    self._release(job)
                job.events.put(Failed(exc))

    def _prefill_chunk(self, job: Job) -> None:
        cache, total = job.caches[0], job.prompt.num_tokens
        if not job.started:
            job.started = True
            job.events.put(Started(self.prefix.load(job.mode, job.keys, total - 1, cache)))
        start = cache.length
        end = min(total, start + self.prefill_chunk)
        embeds, im_mask = self.model.embed_prompt(job.prompt, lambda s: self._features(job, s), start, end)
        logits = self.model.forward(embeds, im_mask, cache, job.mode, last_only=True)
        self.steps_run += 1
        self.prefill_chunks_run += 1
        self._keep(job, end if end == total else end - end % BLOCK)
        if end < total:
            return
        vocab, device = logits.shape[-1], logits.device
        job.rows = [Row.start(job.params, job.prefill_ids, vocab, device) for _ in range(job.width)]
        job.decoding = True
        if job.width == 1:
            self._emit(job, generate.choose(logits, job.rows).tolist()[0])
            return
        for other in job.caches[1:]:
            other.data[:, :, :, :total] = cache.data[:, :, :, :total]
            other.length = total
        job.beam = BeamSearch(job.params, self.stop_ids, job.rows[0].generator)
        self._beam_step(job, logits)

    def _features(self, job: Job, segment: ImageSegment) -> torch.Tensor:
        """The image's features, encoded once per job and kept in the feature cache for others."""
        key = image_key(segment)
        if key not in job.features:

            def encode() -> torch.Tensor:
                pixels = job.pixels.pop(key, None)
                return self.model.encode_image(
                    image_pixels(segment, self.read_image) if pixels is None else pixels
                )

            job.features[key] = self.features.get(segment, encode)
        return job.features[key]

    def _decode(self, jobs: list[Job]) -> None:
        caches = [cache for job in jobs for cache in job.caches]
        tokens = torch.tensor([t for job in jobs for t in job.pending], device=self.model.device)
        modes = [job.mode for job in jobs for _ in range(job.width)]
        logits = self.model.decode(tokens, caches, task_rows(modes, self.model.device))
        self.steps_run += 1
        plain: list[Job] = []
        plain_rows: list[int] = []
        offset = 0
        for job in jobs:
            if job.beam is None:
                job.fed.extend(job.pending)
                plain.append(job)
                plain_rows.append(offset)
            else:
                self._beam_step(job, logits[offset : offset + job.width])
            offset += job.width
        if plain:
            chosen = generate.choose(rows_of(logits, plain_rows), [job.rows[0] for job in plain]).tolist()
            for job, token in zip(plain, chosen, strict=True):
                self._emit(job, token)

    def _emit(self, job: Job, token: int) -> None:
        row = job.rows[0]
        row.generated += 1
        job.events.put(Tokens((token,)))
        if token in self.stop_ids:
            self._finish(job, "stop")
        elif row.generated >= job.params.max_new_tokens:
            self._finish(job, "length")
        else:
            row.seen[token] = True
            job.pending = [token]

    def _beam_step(self, job: Job, logits: torch.Tensor) -> None:
        """One step of the job's beam search; the caches and bitmaps follow the beams they continue."""
        assert job.beam is not None
        open_beams = len(job.beam.beams)
        step = job.beam.step(logits, torch.stack([row.seen for row in job.rows[:open_beams]]))
        if job.beam.done:
            best = job.beam.best()
            ends = () if best.stop is None else (best.stop,)
            job.events.put(Tokens((*best.tokens, *ends)))
            self._finish(job, "length" if best.stop is None else "stop")
            return
        start, end = job.prompt.num_tokens, job.caches[0].length
        if end > start and step.parents != list(range(job.width)):
            slots = [cache.data[:, :, :, start:end] for cache in job.caches]
            torch._foreach_copy_(slots, [slots[p].clone() for p in step.parents])
        seen = [job.rows[p].seen.clone() for p in step.parents]
        for row, bitmap, token in zip(job.rows, seen, step.tokens, strict=True):
            row.seen = bitmap
            row.seen[token] = True
        job.pending = step.tokens

    def _keep(self, job: Job, upto: int) -> None:
        """Offer the job's first `upto` positions to the prefix cache."""
        if upto > 0:
            keys = (job.keys + job.fed)[:upto]
            limit = max(0, self.budget - self._reserved)
            self.prefix.insert(job.generation, job.mode, keys, job.caches[0], limit)

    def _finish(self, job: Job, reason: FinishReason) -> None:
        if job.started:
            length = job.caches[0].length
            self._keep(job, length if job.beam is None else min(length, job.prompt.num_tokens))
        self._release(job)
        job.events.put(Done(reason))

    def _release(self, job: Job) -> None:
        self._running.remove(job)
        self._reserved -= job.reserved
        job.caches, job.rows, job.features, job.pixels = [], [], {}, {}
