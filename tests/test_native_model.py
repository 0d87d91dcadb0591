"""The native IXC-2.5 model: vision token layout, PLoRA and task LoRA routing, GQA packing, rope, KV cache.

Models are built in memory at toy sizes with the tiny checkpoint's seeded initialiser; the checks compare
against independent plain computations or against the same model with a LoRA switched off.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ixc_app.engines.base import BadRequest, ContextTooLong
from ixc_app.engines.native import NativeModel
from ixc_app.engines.native.attention import Extend, rope_base, rope_tables
from ixc_app.engines.native.config import ModelConfig, RopeScaling, VisionConfig
from ixc_app.engines.native.model import task_rows
from ixc_app.engines.native.pixels import image_pixels
from ixc_app.engines.native.tiny import random_state
from ixc_app.engines.native.vision import layout_tokens, split_views
from ixc_app.ixc import hd
from ixc_app.ixc.grid import image_token_count
from ixc_app.ixc.prompt import ImageRef, ImageSegment, Prompt, TextSegment, Turn
from ixc_app.ixc.template import build_prompt
from ixc_app.media import load_rgb

TASKS = {"lora_sft": 4, "lora_dpo": 4, "lora_web": 4}


def toy_config(**overrides: object) -> ModelConfig:
    base = ModelConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        bias=False,
        vision=VisionConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24),
        plora_rank=8,
        plora_alpha=8.0,
        task_lora_ranks=dict(TASKS),
    )
    return dataclasses.replace(base, **overrides)


def toy_model(seed: int = 0, **overrides: object) -> NativeModel:
    model = NativeModel(toy_config(**overrides))
    model.load_state_dict(random_state(model, seed))
    return model.eval().requires_grad_(False)


def zero_params(model: NativeModel, suffix: str) -> None:
    touched = [p for name, p in model.named_parameters() if name.endswith(suffix)]
    assert touched, suffix
    for p in touched:
        p.zero_()


def run(model: NativeModel, embeds: torch.Tensor, im_mask: torch.Tensor, mode: str = "base") -> torch.Tensor:
    return model.forward(embeds, im_mask, model.new_cache(embeds.shape[0]), mode)


def rows_differ(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().amax(dim=-1) > 1e-4


# --- vision layout ------------------------------------------------------------------------------------------


def marked_features(views: int, grid: int = 40) -> torch.Tensor:
    """Tower output whose channels say (view, patch row, patch col)."""
    v, r, c = torch.meshgrid(torch.arange(views), torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.stack([v, r, c], dim=-1).reshape(views, grid * grid, 3).float()


def merged_token(view: int, row: int, col: int) -> list[float]:
    """The spec's 2x2 merge: neighbours (0,0), (0,1), (1,0), (1,1) concatenated channel-wise."""
    out: list[float] = []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        out += [view, 2 * row + dy, 2 * col + dx]
    return out


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 3), (3, 1)])
def test_image_tokens_follow_the_spec_order(rows: int, cols: int) -> None:
    glb, sub = [-1.0] * 12, [-2.0] * 12
    tokens = layout_tokens(
        marked_features(1 + rows * cols),
        rows,
        cols,
        torch.full((1, 1, 12), -1.0),
        torch.full((1, 1, 1, 12), -2.0),
    )
    expected: list[list[float]] = []
    for r in range(20):
        expected += [merged_token(0, r, c) for c in range(20)] + [sub]
    expected.append(glb)
    for r in range(20 * rows):
        for c in range(20 * cols):
            crop = (r // 20) * cols + c // 20
            expected.append(merged_token(1 + crop, r % 20, c % 20))
        expected.append(sub)

    assert tokens.shape[0] == image_token_count(rows, cols) == (rows * cols + 1) * 400 + 1 + (rows + 1) * 20
    assert tokens.tolist() == expected
    is_glb = (tokens == -1).all(dim=1).nonzero().flatten().tolist()
    is_sub = (tokens == -2).all(dim=1).nonzero().flatten().tolist()
    assert is_glb == [420]
    assert is_sub == [21 * k + 20 for k in range(20)] + [
        421 + (20 * cols + 1) * k + 20 * cols for k in range(20 * rows)
    ]


def test_views_are_the_global_resize_then_crops_row_by_row() -> None:
    rows, cols = 2, 3
    canvas = torch.arange(rows * cols, dtype=torch.float32).reshape(1, 1, rows, cols)
    pixels = canvas.repeat_interleave(560, dim=2).repeat_interleave(560, dim=3).expand(1, 3, -1, -1)

    views, got_rows, got_cols = split_views(pixels, 560)

    assert (got_rows, got_cols) == (rows, cols)
    assert views.shape == (1 + rows * cols, 3, 560, 560)
    for crop in range(rows * cols):
        assert torch.equal(views[1 + crop], torch.full((3, 560, 560), float(crop)))
    global_view = F.interpolate(pixels, size=(560, 560), mode="bicubic", align_corners=False)
    assert torch.equal(views[0], global_view[0])
    one = torch.randn(1, 3, 560, 560)
    assert torch.equal(split_views(one, 560)[0][0], one[0])


def plain_clip_features(model: NativeModel, views: torch.Tensor) -> torch.Tensor:
    """CLIP written out step by step: patches, CLS, positions, pre-norm, layers; last layer, CLS dropped."""
    p = {k: v for k, v in model.vit.vision_tower.vision_model.state_dict().items()}
    cfg = model.config.vision
    n, width, heads = views.shape[0], cfg.hidden_size, cfg.num_attention_heads
    patches = views.unfold(2, 14, 14).unfold(3, 14, 14)  # n, 3, 40, 40, 14, 14
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(n, 1600, 3 * 14 * 14)
    x = patches @ p["embeddings.patch_embedding.weight"].reshape(width, -1).T
    x = torch.cat([p["embeddings.class_embedding"].expand(n, 1, width), x], dim=1)
    x = x + p["embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (width,), p["pre_layrnorm.weight"], p["pre_layrnorm.bias"], 1e-5)
    for i in range(cfg.num_hidden_layers):
        w = {
            k.split(f"encoder.layers.{i}.", 1)[1]: v
            for k, v in p.items()
            if k.startswith(f"encoder.layers.{i}.")
        }
        h = F.layer_norm(x, (width,), w["layer_norm1.weight"], w["layer_norm1.bias"], 1e-5)
        q, k, v = (
            (h @ w[f"self_attn.{m}.weight"].T + w[f"self_attn.{m}.bias"]).reshape(
                n, -1, heads, width // heads
            )
            for m in ("q_proj", "k_proj", "v_proj")
        )
        scores = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(width // heads)
        attn = torch.einsum("nhqk,nkhd->nqhd", scores.softmax(-1), v).reshape(n, -1, width)
        x = x + attn @ w["self_attn.out_proj.weight"].T + w["self_attn.out_proj.bias"]
        h = F.layer_norm(x, (width,), w["layer_norm2.weight"], w["layer_norm2.bias"], 1e-5)
        h = h @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
    return x[:, 1:]


def test_encode_image_is_clip_then_layout_then_projector() -> None:
    model = toy_model()
    pixels = torch.randn(1, 3, 560, 1120)
    views, rows, cols = split_views(pixels, 560)
    features = plain_clip_features(model, views)
    tokens = layout_tokens(features, rows, cols, model.plora_glb_GN, model.plora_sub_GN)
    proj = model.vision_proj
    expected = F.gelu(tokens @ proj[0].weight.T + proj[0].bias) @ proj[2].weight.T + proj[2].bias

    got = model.encode_image(pixels)

    assert got.shape == (image_token_count(1, 2), model.config.hidden_size)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


# --- PLoRA and task LoRAs -----------------------------------------------------------------------------------


def image_span_input(model: NativeModel, length: int = 14, span: tuple[int, int] = (5, 10)):
    embeds = torch.randn(length, model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    im_mask = torch.zeros(length, dtype=torch.bool)
    im_mask[span[0] : span[1]] = True
    return embeds, im_mask


def test_zero_plora_b_gives_the_text_only_logits() -> None:
    model = toy_model()
    zero_params(model, "Plora_B.weight")
    embeds, im_mask = image_span_input(model)

    assert torch.equal(run(model, embeds, im_mask), run(model, embeds, torch.zeros_like(im_mask)))
    assert torch.equal(
        run(model, embeds, torch.ones_like(im_mask)), run(model, embeds, torch.zeros_like(im_mask))
    )


def test_plora_changes_image_positions_and_what_follows_only() -> None:
    model = toy_model()
    embeds, im_mask = image_span_input(model, span=(5, 10))

    with_images = run(model, embeds, im_mask)
    text_only = run(model, embeds, torch.zeros_like(im_mask))

    changed = rows_differ(with_images, text_only)
    assert not changed[:5].any()
    assert changed[5:].all()


def test_plora_is_scaled_by_alpha_over_rank() -> None:
    model = toy_model()
    embeds, im_mask = image_span_input(model)
    doubled = toy_model(plora_alpha=16.0)
    for name, p in doubled.named_parameters():
        if name.endswith("Plora_B.weight"):
            p.mul_(0.5)

    torch.testing.assert_close(run(doubled, embeds, im_mask), run(model, embeds, im_mask))


def test_task_loras_apply_at_every_token_in_their_mode_only() -> None:
    model = toy_model()
    embeds, im_mask = image_span_input(model)
    base = run(model, embeds, im_mask, "base")
    write = run(model, embeds, im_mask, "write")
    web = run(model, embeds, im_mask, "web")

    assert rows_differ(write, base).all()
    assert rows_differ(web, base).all()
    assert rows_differ(write, web).all()

    zero_params(model, "lora_web_B.weight")
    assert torch.equal(run(model, embeds, im_mask, "web"), base)
    assert torch.equal(run(model, embeds, im_mask, "write"), write)

    zero_params(model, "lora_sft_B.weight")
    assert rows_differ(run(model, embeds, im_mask, "write"), base).all()
    zero_params(model, "lora_dpo_B.weight")
    assert torch.equal(run(model, embeds, im_mask, "write"), base)


def test_a_model_without_task_loras_serves_base_only() -> None:
    model = toy_model(task_lora_ranks={})
    embeds, im_mask = image_span_input(model)

    assert model.supported_modes == frozenset({"base"})
    assert not [n for n in model.state_dict() if ".lora_" in n]
    with pytest.raises(BadRequest, match="write"):
        run(model, embeds, im_mask, "write")


# --- attention, rope and the KV cache -----------------------------------------------------------------------


def rotate_half_rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE on [tokens, heads, dim] at positions 0.., pairing dimension i with i + dim/2."""
    dim = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, dim, 2).float() / dim)
    angles = torch.outer(torch.arange(x.shape[0]).float(), inv)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    a, b = x[..., : dim // 2], x[..., dim // 2 :]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def test_wqkv_packs_query_heads_then_key_then_value_per_kv_group() -> None:
    model = toy_model()
    cfg = model.config
    heads, kv, hdim, hidden = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size
    per = heads // kv
    gen = torch.Generator().manual_seed(3)
    wq, wk, wv = (torch.randn(n * hdim, hidden, generator=gen) / 6 for n in (heads, kv, kv))
    wo = torch.randn(hidden, heads * hdim, generator=gen) / 6
    blocks = []
    for g in range(kv):
        blocks += [wq[(g * per + j) * hdim : (g * per + j + 1) * hdim] for j in range(per)]
        blocks += [wk[g * hdim : (g + 1) * hdim], wv[g * hdim : (g + 1) * hdim]]
    attention = model.model.layers[0].attention
    attention.wqkv.weight.copy_(torch.cat(blocks))
    attention.wo.weight.copy_(wo)
    count = 9
    x = torch.randn(count, hidden, generator=gen)

    layout = Extend(model.new_cache(count), count)
    got = attention(x, None, (), rope_tables(cfg, 0, count, x.device), layout, 0)

    q = rotate_half_rope((x @ wq.T).view(count, heads, hdim), cfg.rope_theta)
    k = rotate_half_rope((x @ wk.T).view(count, kv, hdim), cfg.rope_theta)
    v = (x @ wv.T).view(count, kv, hdim)
    out = torch.empty(count, heads, hdim)
    causal = torch.ones(count, count, dtype=torch.bool).tril()
    for h in range(heads):
        scores = (q[:, h] @ k[:, h // per].T) / math.sqrt(hdim)
        out[:, h] = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v[:, h // per]
    torch.testing.assert_close(got, out.reshape(count, -1) @ wo.T, atol=1e-5, rtol=1e-5)


def test_chunked_forward_with_cache_equals_one_pass() -> None:
    model = toy_model()
    embeds, im_mask = image_span_input(model, length=12, span=(3, 8))
    whole = run(model, embeds, im_mask, "write")

    cache = model.new_cache(13)
    parts, start = [], 0
    for size in (2, 4, 3, 1, 1, 1):
        parts.append(
            model.forward(embeds[start : start + size], im_mask[start : start + size], cache, "write")
        )
        start += size
        assert cache.length == start

    torch.testing.assert_close(torch.cat(parts), whole, atol=1e-5, rtol=1e-5)
    last = model.forward(embeds[-1:], im_mask[-1:], cache.clone(), "write", last_only=True)
    assert last.shape == (1, model.config.vocab_size)


def test_cache_truncate_rolls_back_and_capacity_is_bounded() -> None:
    model = toy_model()
    embeds, im_mask = image_span_input(model, length=10)
    cache = model.new_cache(10)
    first = model.forward(embeds, im_mask, cache)
    cache.truncate(6)
    again = model.forward(embeds[6:], im_mask[6:], cache)

    torch.testing.assert_close(again, first[6:], atol=1e-5, rtol=1e-5)
    assert cache.capacity == 10
    assert cache.nbytes == 2 * 2 * 2 * 10 * 8 * 4  # layers x (k, v) x kv heads x tokens x head dim x fp32
    assert cache.nbytes == 10 * model.kv_bytes_per_position()
    with pytest.raises(ContextTooLong, match="holds 10"):
        model.forward(embeds[:1], im_mask[:1], cache)
    assert cache.length == 10


def test_a_chunk_after_cached_positions_equals_the_cold_prefill_in_every_mode() -> None:
    """Bottom-right-aligned causal attention: the chunk's queries see the cache and their own past only."""
    model = toy_model()
    embeds, im_mask = image_span_input(model, length=40, span=(6, 30))
    for mode in ("base", "write", "web"):
        cold = run(model, embeds, im_mask, mode)
        for cached in (1, 7, 29):
            cache = model.new_cache(40)
            model.forward(embeds[:cached], im_mask[:cached], cache, mode)
            warm = model.forward(embeds[cached:], im_mask[cached:], cache, mode)
            torch.testing.assert_close(warm, cold[cached:], atol=1e-5, rtol=1e-5)


def test_batched_decode_equals_one_sequence_at_a_time() -> None:
    """Rows of different lengths and modes in one step give each row's own logits."""
    model = toy_model()
    embeds, im_mask = image_span_input(model, length=30, span=(2, 12))
    setups = [(5, "base"), (30, "write"), (17, "web"), (11, "base")]
    caches, alone = [], []
    tokens = torch.tensor([3, 11, 42, 3])
    for length, mode in setups:
        for target in (caches, alone):
            cache = model.new_cache(31)
            model.forward(embeds[:length], im_mask[:length], cache, mode)
            target.append(cache)
    batched = model.decode(tokens, caches, task_rows([mode for _, mode in setups], tokens.device))
    for row, ((_, mode), cache) in enumerate(zip(setups, alone, strict=True)):
        one = model.forward(model.embed_tokens([int(tokens[row])]), None, cache, mode)
        torch.testing.assert_close(batched[row], one[0], atol=1e-5, rtol=1e-5)
        assert caches[row].length == cache.length


def test_dynamic_ntk_base_formula() -> None:
    cfg = toy_config(max_position_embeddings=64, rope_theta=1e6, rope_scaling=RopeScaling("dynamic", 2.0))
    dim = cfg.head_dim

    assert rope_base(cfg, 64) == 1e6
    assert rope_base(cfg, 128) == pytest.approx(1e6 * 3.0 ** (dim / (dim - 2)))
    assert rope_base(cfg, 100) == pytest.approx(1e6 * (2 * 100 / 64 - 1) ** (dim / (dim - 2)))

    cos, sin = rope_tables(cfg, start=90, count=10, device=torch.device("cpu"))
    inv = 1.0 / rope_base(cfg, 100) ** (torch.arange(0, dim, 2).float() / dim)
    angles = torch.outer(torch.arange(90, 100).float(), inv)
    torch.testing.assert_close(cos, torch.cat([angles, angles], -1).cos())
    torch.testing.assert_close(sin, torch.cat([angles, angles], -1).sin())


def test_linear_rope_scaling_divides_positions() -> None:
    cfg = toy_config(rope_scaling=RopeScaling("linear", 4.0))
    cos, _ = rope_tables(cfg, start=8, count=4, device=torch.device("cpu"))
    plain, _ = rope_tables(toy_config(), start=2, count=1, device=torch.device("cpu"))
    torch.testing.assert_close(cos[0], plain[0])


def test_dynamic_ntk_only_acts_past_max_positions() -> None:
    scaled = toy_model(max_position_embeddings=16, rope_scaling=RopeScaling("dynamic", 2.0))
    plain = toy_model(max_position_embeddings=16)
    embeds, im_mask = image_span_input(scaled, length=20)

    assert torch.equal(run(scaled, embeds[:16], im_mask[:16]), run(plain, embeds[:16], im_mask[:16]))
    # Position 0 attends only to itself at angle 0, so the base cannot change it.
    assert rows_differ(run(scaled, embeds, im_mask), run(plain, embeds, im_mask))[1:].all()

    def two_chunks(model: NativeModel) -> torch.Tensor:
        cache = model.new_cache(20)
        model.forward(embeds[:16], im_mask[:16], cache)
        return model.forward(embeds[16:], im_mask[16:], cache)

    # Keys cached before the length passed max_position_embeddings keep their rotation, as in the reference.
    assert rows_differ(two_chunks(scaled), run(scaled, embeds, im_mask)[16:]).all()
    torch.testing.assert_close(two_chunks(plain), run(plain, embeds, im_mask)[16:], atol=1e-5, rtol=1e-5)


# --- prompts ------------------------------------------------------------------------------------------------


def test_embed_prompt_places_text_and_image_rows() -> None:
    model = toy_model()
    image = ImageRef(key="k", path="unused.png", width=560, height=560)
    segment = ImageSegment(image=image, hd_num=24, grid=(1, 1), num_tokens=841)
    prompt = Prompt(text="", segments=(TextSegment("a", (1, 5)), segment, TextSegment("b", (7,))))
    features = torch.randn(841, model.config.hidden_size)

    embeds, im_mask = model.embed_prompt(prompt, lambda seg: features)

    assert embeds.shape == (844, model.config.hidden_size)
    assert im_mask.tolist() == [False, False] + [True] * 841 + [False]
    assert torch.equal(embeds[:2], model.embed_tokens([1, 5]))
    assert torch.equal(embeds[2:843], features)
    assert torch.equal(embeds[843:], model.embed_tokens([7]))
    with pytest.raises(ValueError, match="841"):
        model.embed_prompt(prompt, lambda seg: features[:840])


def save_image(path: Path, size: tuple[int, int], seed: int) -> ImageRef:
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=gen, dtype=torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return ImageRef(key=path.stem, path=str(path), width=size[0], height=size[1])


def test_image_pixels_uses_the_hd_partition_or_the_strip_as_is(tmp_path: Path) -> None:
    photo = save_image(tmp_path / "photo.png", (700, 400), 0)
    strip = dataclasses.replace(save_image(tmp_path / "strip.png", (560, 1120), 1), is_video=True)
    with Image.open(photo.path) as im:
        expected_photo = hd.hd_transform(im.convert("RGB"), 6).pixel_values
    with Image.open(strip.path) as im:
        expected_strip = hd.normalize(im.convert("RGB"))

    got_photo = image_pixels(ImageSegment(photo, 6, (1, 2), image_token_count(1, 2)), load_rgb)
    got_strip = image_pixels(ImageSegment(strip, 6, (2, 1), image_token_count(2, 1)), load_rgb)

    assert torch.equal(got_photo, expected_photo)
    assert torch.equal(got_strip, expected_strip)
    assert got_strip.shape == (1, 3, 1120, 560)


def test_logits_of_a_template_prompt(tiny_checkpoint: Path, tmp_path: Path) -> None:
    model = NativeModel.from_pretrained(tiny_checkpoint)
    image = save_image(tmp_path / "cat.png", (300, 200), 2)
    prompt = build_prompt([Turn("user", "What is this?", (image,))], model.tokenizer)
    with Image.open(image.path) as im:
        pixels = hd.hd_transform(im.convert("RGB"), 24).pixel_values

    from_file = model.logits(prompt, {image.key: image_pixels(prompt.images[0], load_rgb)})
    assert from_file.shape == (prompt.num_tokens, 92544)
    assert from_file.dtype == torch.float32
    last = from_file[-1]
    del from_file
    assert torch.equal(model.logits(prompt, {image.key: pixels})[-1], last)
    other = model.logits(prompt, {image.key: torch.flip(pixels, dims=[3])})[-1]
    assert (other - last).abs().max() > 1e-4
