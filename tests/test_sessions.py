"""Per-conversation KV reuse and the image feature cache.

The rules are checked on their own (prefix arithmetic against a position-by-position comparison, LRU order
with small caches), then end to end on the tiny checkpoint: whatever the session kept, the logits the next
answer starts from must equal those of a cold prefill of the whole transcript.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import native_engine
from PIL import Image

from ixc_app.engines.base import Delta, Finished, GenerationParams, Request
from ixc_app.engines.native import KVCache, NativeModel, generate
from ixc_app.engines.native.engine import NativeEngine
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.engines.native.sessions import FeatureCache, SessionStore, reusable_prefix
from ixc_app.ixc.prompt import ImageRef, ImageSegment, Prompt, TextSegment, Turn
from ixc_app.ixc.template import build_prompt, prompt_prefix_len
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


def positions(prompt: Prompt) -> list[Hashable]:
    """One comparable item per embedding position: a token id, or (image key, crop budget, index)."""
    out: list[Hashable] = []
    for segment in prompt.segments:
        if isinstance(segment, TextSegment):
            out.extend(segment.token_ids)
        else:
            out.extend((segment.image.key, segment.hd_num, i) for i in range(segment.num_tokens))
    return out


def common_prefix(a: list[Hashable], b: list[Hashable]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_reusable_prefix_counts_equal_positions_including_the_answer(
    tok: Tokenizer, images: list[ImageRef]
) -> None:
    first = (Turn("user", "Compare these.", tuple(images[:2])),)
    old = build_prompt(first, tok)
    answer_text = "The first is brighter."
    follow_up = (*first, Turn("assistant", answer_text), Turn("user", "And this?", (images[2],)))
    new = build_prompt(follow_up, tok)
    # The template re-tokenizes the answer inside a longer text: the same ids, or other ids for the same text.
    same_ids = tok.encode(answer_text, bos=False)
    other_ids = tok.encode("The first is bri", bos=False) + tok.encode("ghter.", bos=False)
    assert same_ids != other_ids
    for answer in (same_ids, other_ids, [], [tok.eos_id]):
        expected = common_prefix(positions(old) + answer, positions(new))
        assert reusable_prefix(old, answer, new) == expected
    assert reusable_prefix(old, same_ids, new) > old.num_tokens + 2
    edited = build_prompt((Turn("user", "Compare those.", tuple(images[:2])),), tok)
    assert reusable_prefix(old, same_ids, edited) == common_prefix(positions(old), positions(edited))
    assert reusable_prefix(old, same_ids, old) == old.num_tokens


def fake_cache(tokens: int) -> KVCache:
    """A real KVCache holding `tokens` positions of one layer and one 1-wide head: 8 bytes per position."""
    return KVCache(
        keys=[torch.zeros(1, tokens, 1)], values=[torch.zeros(1, tokens, 1)], max_tokens=1000, length=tokens
    )


def use_with_cache(store: SessionStore, session_id: str, tokens: int) -> None:
    with store.use(session_id) as session:
        session.cache = fake_cache(tokens)


def test_store_evicts_least_recently_used_idle_sessions_beyond_the_budget() -> None:
    store = SessionStore(budget_bytes=3 * 80)
    ids = [uuid.uuid4().hex for _ in range(4)]
    for i in ids[:3]:
        use_with_cache(store, i, 10)
    assert store.idle_ids == ids[:3]
    assert store.nbytes == 240
    with store.use(ids[0]):
        assert store.idle_ids == ids[1:3]
    assert store.idle_ids == [ids[1], ids[2], ids[0]]
    use_with_cache(store, ids[3], 10)
    assert store.idle_ids == [ids[2], ids[0], ids[3]]
    use_with_cache(store, ids[2], 25)
    assert store.idle_ids == [ids[2]]
    assert store.nbytes == 200
    use_with_cache(store, ids[3], 40)
    assert store.idle_ids == []
    assert store.nbytes == 0


def test_store_never_shares_a_busy_session_and_forgets_cleared_ones() -> None:
    store = SessionStore(budget_bytes=10**6)
    session_id = uuid.uuid4().hex
    with store.use(session_id) as first:
        first.cache = fake_cache(5)
        with store.use(session_id) as second:
            assert second is not first
            assert second.id is None
            second.cache = fake_cache(5)
        store.clear()
    assert first.cache is None
    assert store.nbytes == 0
    with store.use("from-before-a-restart") as fresh:
        assert fresh.id == "from-before-a-restart"
        assert fresh.cache is None
    with store.use(None) as throwaway:
        throwaway.cache = fake_cache(5)
    assert store.nbytes == 0


def test_store_holds_a_bounded_number_of_sessions_and_drops_evicted_ones() -> None:
    store = SessionStore(budget_bytes=10**6, max_idle=3)
    ids = [f"conversation-{i}" for i in range(50)]
    for session_id in ids:
        use_with_cache(store, session_id, 1)
        assert len(store) <= 3
    assert store.idle_ids == ids[-3:]
    for session_id in (uuid.uuid4().hex for _ in range(50)):
        with store.use(session_id):
            pass
    assert len(store) == 3
    use_with_cache(store, "large", 10**6)
    assert store.idle_ids == []
    assert len(store) == 0
    with store.use(ids[-1]) as fresh:
        assert fresh.cache is None
        assert len(store) == 1
    assert len(store) == 0


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


# --- the tiny checkpoint ---


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> NativeModel:
    return NativeModel.from_pretrained(tiny_checkpoint)


def cold_logits(model: NativeModel, prompt: Prompt, mode: str = "base") -> torch.Tensor:
    """Next-token logits of a whole prompt from an empty cache, images encoded afresh."""
    embeds, im_mask = model.embed_prompt(prompt, lambda s: model.encode_image(image_pixels(s, load_rgb)))
    return model.forward(embeds, im_mask, model.new_cache(prompt.num_tokens), mode, last_only=True)[-1]


class StartLogits:
    """Records the logits each answer starts from: the first row the decode loop processes per request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows: list[torch.Tensor] = []
        real = generate.process_logits

        def recording(logits: torch.Tensor, seen: list[int], params: GenerationParams) -> torch.Tensor:
            if not seen:
                self.rows.append(logits.clone())
            return real(logits, seen, params)

        monkeypatch.setattr(generate, "process_logits", recording)


def ask(
    engine: NativeEngine, turns: tuple[Turn, ...], session_id: str | None, mode: str = "base"
) -> tuple[str, Finished]:
    items = list(engine.stream(Request(turns=turns, params=GREEDY, session_id=session_id, mode=mode)))
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


def test_follow_up_regenerate_and_edit_match_a_cold_prefill(
    model: NativeModel, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = StartLogits(monkeypatch)
    engine = native_engine(model)
    session = uuid.uuid4().hex
    answer, first = ask(engine, conversation(images, "")[:1], session)
    assert first.cached_tokens == 0

    turns = conversation(images, answer)
    prompt = build_prompt(turns, model.tokenizer)
    _, follow_up = ask(engine, turns, session)
    cold = cold_logits(model, prompt)
    torch.testing.assert_close(starts.rows[1], cold)
    assert follow_up.prompt_tokens == prompt.num_tokens
    first_prompt = build_prompt(turns[:1], model.tokenizer)
    new_image_at = prompt.num_tokens - prompt.images[-1].num_tokens - len(prompt.segments[-1].token_ids)
    assert 2 * 841 < prompt_prefix_len(first_prompt, prompt) <= follow_up.cached_tokens < new_image_at

    _, regenerated = ask(engine, turns, session)
    torch.testing.assert_close(starts.rows[2], cold)
    assert regenerated.cached_tokens == prompt.num_tokens - 1

    edited_turns = conversation(images, answer, question="Which one is older?")
    edited = build_prompt(edited_turns, model.tokenizer)
    _, after_edit = ask(engine, edited_turns, session)
    torch.testing.assert_close(starts.rows[3], cold_logits(model, edited))
    assert after_edit.cached_tokens == prompt_prefix_len(prompt, edited)
    assert 0 < after_edit.cached_tokens < prompt.num_tokens - 1

    _, other_mode = ask(engine, edited_turns, session, mode="write")
    torch.testing.assert_close(starts.rows[4], cold_logits(model, edited, mode="write"))
    assert other_mode.cached_tokens == 0


def test_evicted_session_rebuilds_from_the_transcript(
    model: NativeModel, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = StartLogits(monkeypatch)
    engine = native_engine(model, cache_budget_bytes=1)
    session = uuid.uuid4().hex
    answer, _ = ask(engine, conversation(images, "")[:1], session)
    assert engine.sessions.nbytes == 0
    turns = conversation(images, answer)
    _, rebuilt = ask(engine, turns, session)
    assert rebuilt.cached_tokens == 0
    torch.testing.assert_close(starts.rows[1], cold_logits(model, build_prompt(turns, model.tokenizer)))


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
    ask(engine, turns, None)
    ask(engine, turns, None)
    assert len(encoded) == 1
    two = (Turn("user", "Compare them.", tuple(images[:2])),)
    ask(engine, two, None)
    ask(engine, two, None)
    assert len(encoded) == 3  # the first image again, at the multi-image crop budget, and the second one

    uncached = native_engine(model, feature_cache_bytes=0)
    ask(uncached, turns, None)
    ask(uncached, turns, None)
    assert len(encoded) == 5


def test_session_state_survives_a_closed_stream(model: NativeModel, images: list[ImageRef]) -> None:
    """A consumer that stops reading mid-answer leaves a cache that still matches what it holds."""
    engine = native_engine(model)
    session = uuid.uuid4().hex
    params = dataclasses.replace(GREEDY, max_new_tokens=40)
    first_turn = (Turn("user", "Tell me about this.", (images[0],)),)
    stream = engine.stream(Request(turns=first_turn, params=params, session_id=session))
    next(item for item in stream if isinstance(item, Delta))
    stream.close()
    answer, finished = ask(engine, first_turn, session)
    assert finished.cached_tokens == finished.prompt_tokens - 1
    assert answer == ask(engine, first_turn, None)[0]
