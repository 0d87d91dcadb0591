"""What the remote engine sends, and that our server reads it back into the request it came from.

Pure: no HTTP. The rendering by LMDeploy's own template is test_lmdeploy_contract.py; the whole path over
HTTP is test_serve_remote.py.
"""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import prompt_of
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ixc_app.config import Limits
from ixc_app.engines.base import GenerationParams, Request
from ixc_app.engines.remote.messages import DataUrls, chat_body, chat_messages
from ixc_app.engines.wire import AFTER_ASSISTANT, AFTER_USER, IMAGE_TOKEN, fold_turns, unfold_turns
from ixc_app.ixc.prompt import ImageRef, Turn
from ixc_app.ixc.template import CHAT_META
from ixc_app.ixc.tokenizer import Tokenizer
from ixc_app.media import load_rgb
from ixc_app.serve.inputs import Defaults, to_request
from ixc_app.serve.protocol import ChatCompletionRequest

plain_text = st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=30)


@given(st.lists(plain_text, min_size=1, max_size=7).filter(lambda texts: len(texts) % 2 == 1))
def test_fold_and_unfold_are_inverse(texts: list[str]) -> None:
    folded = fold_turns(texts)
    assert unfold_turns(folded) == texts
    assert folded.count(AFTER_USER) + folded.count(AFTER_ASSISTANT) == len(texts) - 1


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageRef]:
    folder = tmp_path_factory.mktemp("pictures")
    rgba = Image.new("RGBA", (64, 40), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 32, 40))
    rgba.save(folder / "half-transparent.png")
    Image.new("RGB", (300, 200), (10, 200, 10)).save(folder / "green.jpg")
    Image.new("RGB", (560, 1120), (240, 240, 240)).save(folder / "strip.png")
    return {
        "rgba": ImageRef("rgba", str(folder / "half-transparent.png"), 64, 40),
        "green": ImageRef("green", str(folder / "green.jpg"), 300, 200),
        "strip": ImageRef("strip", str(folder / "strip.png"), 560, 1120, is_video=True),
    }


def decoded(url: str) -> Image.Image:
    header, payload = url.split(",", 1)
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def test_images_are_sent_as_the_native_engine_sees_them(pictures: dict[str, ImageRef]) -> None:
    request = Request(turns=(Turn("user", "Compare.", (pictures["rgba"], pictures["green"])),))
    parts = chat_messages(request, DataUrls(load_rgb))[1]["content"]
    sent = [decoded(part["image_url"]["url"]) for part in parts[1:]]
    assert [image.mode for image in sent] == ["RGB", "RGB"]
    assert sent[0].getpixel((50, 5)) == (255, 255, 255)  # transparency on white, as load_rgb reads it
    assert sent[0].tobytes() == load_rgb(pictures["rgba"].path).tobytes()
    assert [part["image_url"]["hd_num"] for part in parts[1:]] == [6, 6]


def test_a_video_strip_gets_its_own_crop_count(pictures: dict[str, ImageRef]) -> None:
    request = Request(turns=(Turn("user", "A video.", (pictures["strip"], pictures["green"])),))
    parts = chat_messages(request, DataUrls(load_rgb))[1]["content"]
    assert [part["image_url"]["hd_num"] for part in parts[1:]] == [2, 6]


def test_the_body_carries_the_sampling_the_stops_and_the_mode() -> None:
    request = Request(
        turns=(Turn("user", f"An {IMAGE_TOKEN} typed in."),),
        params=GenerationParams(max_new_tokens=9, do_sample=False, top_k=50, seed=4, repetition_penalty=1.1),
        mode="write",
        stop=('"',),
        prefill='标题是"',
    )
    body = chat_body(request, "ixc", DataUrls(load_rgb))
    assert body["model"] == "ixc-write"
    assert (body["max_tokens"], body["top_k"], body["seed"], body["repetition_penalty"]) == (9, 1, 4, 1.1)
    assert body["stop"] == ['"'] and body["stream"] and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": ""},
        {"role": "user", "content": "An  typed in."},
        {"role": "assistant", "content": '标题是"'},
    ]


def round_trip_cases(pictures: dict[str, ImageRef]) -> dict[str, Request]:
    green, rgba = pictures["green"], pictures["rgba"]
    return {
        "text": Request(turns=(Turn("user", "Hi"),), meta_instruction=CHAT_META),
        "no meta, prefill": Request(turns=(Turn("user", "Write."),), prefill="Title:"),
        "history with a lone image": Request(
            turns=(Turn("user", "See.", (green,)), Turn("assistant", "Green."), Turn("user", "Sure?")),
            meta_instruction=CHAT_META,
        ),
        "several images over turns": Request(
            turns=(Turn("user", "One.", (green,)), Turn("assistant", "Ok."), Turn("user", "Two.", (rgba,))),
            meta_instruction=CHAT_META,
            hd_num_multi=2,
        ),
        "video strip": Request(turns=(Turn("user", "Describe.", (pictures["strip"],)),)),
    }


def test_our_server_reads_back_the_prompt_the_client_meant(
    pictures: dict[str, ImageRef], real_tokenizer_path: Path, tmp_path: Path
) -> None:
    tokenizer = Tokenizer.from_file(real_tokenizer_path)
    defaults = Defaults(CHAT_META, 24, 6, Limits())

    def prompt(request: Request) -> tuple:
        built = prompt_of(request, tokenizer)
        images = tuple((s.grid, s.num_tokens) for s in built.images)
        return built.text, tuple(s.token_ids for s in built.segments if hasattr(s, "token_ids")), images

    for name, request in round_trip_cases(pictures).items():
        body = ChatCompletionRequest(**chat_body(request, "ixc", DataUrls(load_rgb)))
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        served = to_request(body, "base", folder, defaults)
        assert prompt(served) == prompt(request), name
        assert served.prefill == request.prefill


def test_greedy_over_the_wire_is_greedy_on_our_server(tmp_path: Path) -> None:
    request = Request(turns=(Turn("user", "Hi"),), params=GenerationParams(do_sample=False))
    body = ChatCompletionRequest(**chat_body(request, "ixc", DataUrls(load_rgb)))
    params = to_request(body, "base", tmp_path, Defaults(CHAT_META, 24, 6, Limits())).params
    assert params.top_k == 1  # sampling from the single most likely token: greedy, on LMDeploy as on ours
    zero = ChatCompletionRequest(model="ixc", messages=[{"role": "user", "content": "Hi"}], temperature=0)
    assert not to_request(zero, "base", tmp_path, Defaults(CHAT_META, 24, 6, Limits())).params.do_sample


def test_requests_without_max_tokens_get_the_servers_cap(tmp_path: Path) -> None:
    limits = replace(Limits(), max_new_tokens=100)
    body = ChatCompletionRequest(model="ixc", messages=[{"role": "user", "content": "Hi"}], max_tokens=5000)
    assert to_request(body, "base", tmp_path, Defaults(CHAT_META, 24, 6, limits)).params.max_new_tokens == 100
