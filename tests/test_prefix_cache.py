"""The content-keyed prefix cache and the image feature cache.

The trie is checked on its own with small caches whose values say which position they hold (reuse exact to
the position, LRU eviction in bytes, leaves first, generations), then end to end on the tiny checkpoint:
whatever was reused, the logits an answer starts from must equal those of a cold prefill of the whole prompt.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import native_engine
from PIL import Image
from prompt_prefix import prompt_prefix_len

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request
from ixc_app.engines.native import NativeModel, generate
from ixc_app.engines.native.attention import KVCache
from ixc_app.engines.native.engine import NativeEngine
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.engines.native.prefix_cache import BLOCK, FeatureCache, PrefixCache, position_keys
from ixc_app.engines.native.tiny import write_tiny_checkpoint
from ixc_app.ixc.prompt import ImageRef, ImageSegment, Prompt, Turn
from ixc_app.ixc.template import CHAT_META, build_prompt
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import load_rgb

GREEDY = GenerationParams(max_new_tokens=6, do_sample=False)


@pytest.fixture(scope="module")
def tok(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRef]:
    """Three different noise images of one crop each (841 embeddings), so prompts stay short."""
    folder = tmp_path_factory.mktemp("images")
    refs = []
    for seed in range(3):
        pixels = np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        path = folder / f"noise{seed}.png"
        Image.fromarray(pixels).save(path)
        refs.append(ImageRef(key=f"noise{seed}", path=str(path), width=320, height=240))
    return refs


def marked(values: list[float]) -> KVCache:
    """A cache of one layer, one head and width one whose value at each position is `values[position]`."""
    data = torch.tensor(values).reshape(1, 1, 1, -1, 1).expand(1, 2, 1, -1, 1).contiguous()
    return KVCache(data, len(values))


def empty(capacity: int) -> KVCache:
    return KVCache(torch.full((1, 2, 1, capacity, 1), -1.0))


def held(cache: KVCache) -> list[float]:
    return cache.data[0, 0, 0, : cache.length, 0].tolist()


def test_the_longest_cached_prefix_is_reused_to_the_position() -> None:
    prefix = PrefixCache()
    first = list(range(2 * BLOCK + 10))
    prefix.insert(0, "base", first, marked([float(k) for k in first]), 10**9)
    # A follow-up: everything cached is reused, but never the last position of the new prompt.
    follow_up = [*first, 500, 501]
    target = empty(len(follow_up))
    assert prefix.load("base", follow_up, len(follow_up) - 1, target) == len(first)
    assert held(target) == [float(k) for k in first]
    # A retry of the same prompt reuses all but its last position.
    assert prefix.load("base", first, len(first) - 1, empty(len(first))) == len(first) - 1
    # An edit in the middle of the second block keeps what comes before it.
    edited = [*first[: BLOCK + 5], 999, *first[BLOCK + 6 :]]
    target = empty(len(edited))
    assert prefix.load("base", edited, len(edited) - 1, target) == BLOCK + 5
    assert held(target) == [float(k) for k in first[: BLOCK + 5]]
    # Another mode shares nothing; an unrelated prompt nothing either.
    assert prefix.load("write", first, len(first) - 1, empty(len(first))) == 0
    assert prefix.load("base", [7, *first], len(first), empty(len(first) + 1)) == 0
    assert prefix.hits == 3


def test_a_longer_block_replaces_the_shorter_one_it_extends() -> None:
    prefix = PrefixCache()
    keys = list(range(BLOCK + 20))
    prefix.insert(0, "base", keys[: BLOCK + 5], marked([float(k) for k in keys[: BLOCK + 5]]), 10**9)
    assert len(prefix) == 2
    per_position = marked([0.0]).nbytes
    prefix.insert(0, "base", keys, marked([float(k) for k in keys]), 10**9)
    assert len(prefix) == 2
    assert prefix.nbytes == len(keys) * per_position
    prefix.insert(0, "base", keys[: BLOCK + 3], marked([float(k) for k in keys[: BLOCK + 3]]), 10**9)
    assert len(prefix) == 2, "a block inside a cached longer one is not stored again"


def test_least_recently_used_blocks_go_first_leaves_before_what_they_extend() -> None:
    prefix = PrefixCache()
    per_block = marked([0.0] * BLOCK).nbytes
    shared = list(range(BLOCK))
    a, b = [*shared, *range(1000, 1000 + BLOCK)], [*shared, *range(2000, 2000 + BLOCK)]
    prefix.insert(0, "base", a, marked([1.0] * len(a)), 10**9)
    prefix.insert(0, "base", b, marked([2.0] * len(b)), 10**9)
    assert len(prefix) == 3
    prefix.load("base", [*a, 5], len(a), empty(len(a) + 1))  # a is the most recent now
    prefix.evict(2 * per_block)
    assert prefix.load("base", [*b, 5], len(b), empty(len(b) + 1)) == BLOCK
    assert prefix.load("base", [*a, 5], len(a), empty(len(a) + 1)) == len(a)
    prefix.insert(0, "base", [*range(3000, 3000 + BLOCK)], marked([3.0] * BLOCK), 2 * per_block)
    assert len(prefix) == 2 and prefix.nbytes == 2 * per_block
    prefix.evict(0)
    assert len(prefix) == 0 and prefix.nbytes == 0


def test_what_was_computed_before_a_clear_is_never_kept_after_it() -> None:
    prefix = PrefixCache()
    keys = list(range(10))
    generation = prefix.generation
    prefix.clear()
    prefix.insert(generation, "base", keys, marked([1.0] * 10), 10**9)
    assert len(prefix) == 0
    prefix.insert(prefix.generation, "base", keys, marked([1.0] * 10), 10**9)
    assert prefix.load("base", [*keys, 1], 10, empty(11)) == 10


def test_position_keys_name_tokens_and_image_positions(tok: Tokenizer, images: list[ImageRef]) -> None:
    one = build_prompt((Turn("user", "Describe it.", (images[0],)),), tok)
    keys = position_keys(one)
    assert len(keys) == one.num_tokens
    assert keys[1:842] == [(("noise0", 24), i) for i in range(841)]
    assert keys[0] == tok.bos_id and all(isinstance(k, int) for k in keys[842:])
    two = build_prompt((Turn("user", "Compare.", tuple(images[:2])),), tok)
    assert (("noise0", 6), 0) in position_keys(two)


def image_segment(key: str, hd_num: int = 24, is_video: bool = False) -> ImageSegment:
    ref = ImageRef(key=key, path=f"/nonexistent/{key}", width=560, height=560, is_video=is_video)
    return ImageSegment(image=ref, hd_num=hd_num, grid=(1, 1), num_tokens=841)


def counting(size: int) -> tuple[list[int], Callable[[], torch.Tensor]]:
    calls: list[int] = []

    def compute() -> torch.Tensor:
        calls.append(1)
        return torch.zeros(size // 4)

    return calls, compute


def test_feature_cache_is_keyed_by_image_and_crop_budget_with_lru_bytes() -> None:
    cache = FeatureCache(budget_bytes=100)
    calls, compute = counting(40)
    cache.get(image_segment("a"), compute)
    cache.get(image_segment("a"), compute)
    assert len(calls) == 1
    cache.get(image_segment("a", hd_num=6), compute)
    assert len(calls) == 2
    cache.get(image_segment("a"), compute)  # most recent now; ("a", 6) is the oldest
    cache.get(image_segment("b"), compute)
    assert cache.nbytes == 80
    cache.get(image_segment("a"), compute)
    cache.get(image_segment("a", hd_num=6), compute)
    assert len(calls) == 4
    big_calls, big = counting(400)
    cache.get(image_segment("huge"), big)
    cache.get(image_segment("huge"), big)
    assert len(big_calls) == 2
    assert cache.nbytes <= 100
    cache.get(image_segment("video", hd_num=24, is_video=True), compute)
    cache.get(image_segment("video", hd_num=6, is_video=True), compute)
    assert len(calls) == 5


def test_features_computed_before_a_clear_are_not_kept() -> None:
    cache = FeatureCache(budget_bytes=100)
    calls, compute = counting(40)

    def clearing() -> torch.Tensor:
        cache.clear()
        return compute()

    cache.get(image_segment("a"), clearing)
    assert image_segment("a") not in cache
    cache.get(image_segment("a"), compute)
    assert image_segment("a") in cache and len(calls) == 2


# --- the tiny checkpoint ---


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> NativeModel:
    return NativeModel.from_pretrained(tiny_checkpoint)


def cold_logits(model: NativeModel, prompt: Prompt, mode: str = "base") -> torch.Tensor:
    """Next-token logits of a whole prompt from an empty cache, images encoded afresh, in one pass."""
    embeds, im_mask = model.embed_prompt(prompt, lambda s: model.encode_image(image_pixels(s, load_rgb)))
    return model.forward(embeds, im_mask, model.new_cache(prompt.num_tokens), mode, last_only=True)[-1]


class StartLogits:
    """Records the logits each answer starts from: the row its first token is chosen from."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: list[torch.Tensor] = []
        real = generate.choose

        def recording(logits: torch.Tensor, rows: list[generate.Row]) -> torch.Tensor:
            self.rows += [logits[i].clone() for i, row in enumerate(rows) if row.generated == 0]
            return real(logits, rows)

        monkeypatch.setattr(generate, "choose", recording)


def ask(
    engine: NativeEngine, turns: tuple[Turn, ...], mode: str = "base", **request: object
) -> tuple[str, Finished]:
    items = list(engine.stream(Request(turns=turns, params=GREEDY, mode=mode, **request)))  # type: ignore[arg-type]
    assert isinstance(items[-1], Finished)
    return "".join(i.text for i in items if isinstance(i, Delta)), items[-1]


def conversation(
    images: list[ImageRef], answer: str, question: str = "What about this one?"
) -> tuple[Turn, ...]:
    return (
        Turn("user", "Compare these pictures.", tuple(images[:2])),
        Turn("assistant", answer),
        Turn("user", question, (images[2],)),
    )


def test_follow_up_retry_edit_and_mode_match_a_cold_prefill(
    model: NativeModel, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = StartLogits(monkeypatch)
    engine = native_engine(model, prefill_chunk=512)
    answer, first = ask(engine, conversation(images, "")[:1])
    assert first.cached_tokens == 0

    turns = conversation(images, answer)
    prompt = build_prompt(turns, model.tokenizer)
    _, follow_up = ask(engine, turns)
    cold = cold_logits(model, prompt)
    torch.testing.assert_close(starts.rows[1], cold)
    assert follow_up.prompt_tokens == prompt.num_tokens
    first_prompt = build_prompt(turns[:1], model.tokenizer)
    new_image_at = prompt.num_tokens - prompt.images[-1].num_tokens - len(prompt.segments[-1].token_ids)
    assert 2 * 841 < prompt_prefix_len(first_prompt, prompt) <= follow_up.cached_tokens < new_image_at

    _, retried = ask(engine, turns)
    torch.testing.assert_close(starts.rows[2], cold)
    assert retried.cached_tokens == prompt.num_tokens - 1

    edited_turns = conversation(images, answer, question="Which one is older?")
    edited = build_prompt(edited_turns, model.tokenizer)
    _, after_edit = ask(engine, edited_turns)
    torch.testing.assert_close(starts.rows[3], cold_logits(model, edited))
    assert after_edit.cached_tokens == prompt_prefix_len(prompt, edited)
    assert 0 < after_edit.cached_tokens < prompt.num_tokens - 1

    _, other_mode = ask(engine, edited_turns, mode="write")
    torch.testing.assert_close(starts.rows[4], cold_logits(model, edited, mode="write"))
    assert other_mode.cached_tokens == 0
    assert engine.prefix.hits == 3


def test_independent_callers_with_the_same_prefix_share_it(
    model: NativeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stateless callers (an HTTP client each, or composer steps) over one article."""
    starts = StartLogits(monkeypatch)
    engine = native_engine(model)
    article = "Tea came to Europe in the seventeenth century. " * 20
    questions = ["Give it a title.", "Where should a picture go?", "Summarise it."]
    requests = [
        Request(
            turns=(Turn("user", f"{article}\n{q}"),), params=GREEDY, meta_instruction=CHAT_META, mode="write"
        )
        for q in questions
    ]
    first = list(engine.stream(requests[0]))[-1]
    results: dict[int, Finished] = {}

    def call(index: int) -> None:
        results[index] = list(engine.stream(requests[index]))[-1]

    threads = [threading.Thread(target=call, args=(i,)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    shared = prompt_prefix_len(
        *(build_prompt(r.turns, model.tokenizer, meta_instruction=CHAT_META) for r in requests[:2])
    )
    assert first.cached_tokens == 0
    assert results[1].cached_tokens == results[2].cached_tokens == shared > 200
    prompts = [build_prompt(r.turns, model.tokenizer, meta_instruction=CHAT_META) for r in requests]
    colds = [cold_logits(model, p, mode="write") for p in prompts]
    for row in starts.rows[1:]:
        assert any(torch.allclose(row, cold, atol=1e-5, rtol=1e-5) for cold in colds[1:])


def test_under_a_tiny_budget_nothing_is_kept_and_answers_stay_exact(
    model: NativeModel, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = StartLogits(monkeypatch)
    engine = native_engine(model, cache_budget_bytes=1)
    answer, _ = ask(engine, conversation(images, "")[:1])
    assert len(engine.prefix) == 0 and engine.prefix.nbytes == 0
    turns = conversation(images, answer)
    _, rebuilt = ask(engine, turns)
    assert rebuilt.cached_tokens == 0
    torch.testing.assert_close(starts.rows[1], cold_logits(model, build_prompt(turns, model.tokenizer)))


def test_a_poisoned_entry_is_never_served_after_a_model_reload(
    tiny_checkpoint: Path, tmp_path: Path, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries computed with other weights (here: overwritten with NaN) die with the model they came from."""
    starts = StartLogits(monkeypatch)
    old = NativeModel.from_pretrained(tiny_checkpoint)
    engine = native_engine(old)
    turns = (Turn("user", "Describe it.", (images[0],)),)
    ask(engine, turns)
    for node in engine.prefix._lru:
        node.kv.fill_(float("nan"))
    _, poisoned = ask(engine, turns)
    assert poisoned.cached_tokens > 0 and starts.rows[-1].isnan().all(), "the poison must be served before"

    other = write_tiny_checkpoint(tmp_path / "other", Path(tiny_checkpoint) / "tokenizer.model", seed=7)
    new = NativeModel.from_pretrained(other)
    engine.reload(new)
    assert len(engine.prefix) == 0 and engine.features.nbytes == 0
    _, after = ask(engine, turns)
    assert after.cached_tokens == 0
    torch.testing.assert_close(starts.rows[-1], cold_logits(new, build_prompt(turns, new.tokenizer)))
    engine.close()


def test_feature_cache_hit_skips_the_vision_tower(
    model: NativeModel, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    real = model.encode_image

    def counting_encode(pixels: torch.Tensor) -> torch.Tensor:
        encoded.append(pixels.shape[-1])
        return real(pixels)

    monkeypatch.setattr(model, "encode_image", counting_encode)
    engine = native_engine(model)
    turns = (Turn("user", "Describe it.", (images[0],)),)
    ask(engine, turns)
    ask(engine, turns)
    assert len(encoded) == 1
    two = (Turn("user", "Compare them.", tuple(images[:2])),)
    ask(engine, two)
    ask(engine, two)
    assert len(encoded) == 3  # the first image again, at the multi-image crop budget, and the second one

    no_features = native_engine(model, feature_cache_bytes=0)
    ask(no_features, turns)
    ask(no_features, turns)
    assert len(encoded) == 4, "a prompt whose image positions are all cached needs no features"
    nothing_kept = native_engine(model, feature_cache_bytes=0, cache_budget_bytes=1)
    ask(nothing_kept, turns)
    ask(nothing_kept, turns)
    assert len(encoded) == 6


def test_what_a_closed_stream_computed_is_kept_and_still_exact(
    model: NativeModel, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer that stops reading mid-answer leaves cached blocks that hold what they claim."""
    engine = native_engine(model)
    params = dataclasses.replace(GREEDY, max_new_tokens=40)
    first_turn = (Turn("user", "Tell me about this.", (images[0],)),)
    stream = engine.stream(Request(turns=first_turn, params=params))
    next(item for item in stream if isinstance(item, Delta))
    stream.close()
    answer, finished = ask(engine, first_turn)
    assert finished.cached_tokens == finished.prompt_tokens - 1
    assert answer == ask(native_engine(model), first_turn)[0]


def test_a_follow_up_reads_only_the_images_its_cached_prefix_does_not_hold(
    model: NativeModel, images: list[ImageRef]
) -> None:
    """Neither the feature cache (off here) nor the files are needed for image positions already cached."""
    read: list[str] = []

    def counting_reader(path: str) -> Image.Image:
        read.append(Path(path).name)
        return load_rgb(path)

    engine = native_engine(model, feature_cache_bytes=0, read_image=counting_reader)
    answer, _ = ask(engine, conversation(images, "")[:1])
    assert sorted(read) == ["noise0.png", "noise1.png"]
    _, follow_up = ask(engine, conversation(images, answer))
    assert follow_up.cached_tokens > 2 * 841
    assert read[2:] == ["noise2.png"]
