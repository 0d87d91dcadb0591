"""The InternLM2 tokenizer: ids of the real `tokenizer.model`, round trips, and streaming-safe decoding."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from ixc_app.ixc.tokenizer import IncrementalDecoder, Tokenizer, TokenizerError


@pytest.fixture(scope="module")
def tok(real_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(real_tokenizer_path)


def stream(tokenizer: Tokenizer, ids: Iterable[int]) -> list[str]:
    """Every chunk an IncrementalDecoder gives for `ids`, the flush last."""
    decoder = IncrementalDecoder(tokenizer)
    chunks = [decoder.push(i) for i in ids]
    return [*chunks, decoder.flush()]


def test_special_ids_of_the_real_tokenizer(tok: Tokenizer) -> None:
    assert tok.vocab_size == 92544
    assert tok.bos_id == 1
    assert tok.eos_id == 2
    assert tok.token_id("<s>") == 1
    assert tok.token_id("</s>") == 2
    assert tok.token_id("[UNUSED_TOKEN_146]") == 92543
    assert tok.token_id("[UNUSED_TOKEN_145]") == 92542
    assert tok.stop_ids == (2, 92542)


def test_loads_from_the_checkpoint_folder(real_tokenizer_path: Path, tok: Tokenizer) -> None:
    from_folder = Tokenizer.from_file(real_tokenizer_path.parent)
    assert from_folder.encode("Hello, who are you?", bos=True) == tok.encode("Hello, who are you?", bos=True)


def test_unknown_piece_is_an_error(tok: Tokenizer) -> None:
    with pytest.raises(TokenizerError, match=r"no piece '\[NOT_A_PIECE\]'"):
        tok.token_id("[NOT_A_PIECE]")
    assert tok.token_id("<unk>") == 0


def test_missing_and_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError) as missing:
        Tokenizer.from_file(tmp_path)
    assert str(missing.value) == (
        f"No tokenizer found at {tmp_path / 'tokenizer.model'}: "
        "point to a checkpoint folder with tokenizer.model."
    )
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"not a sentencepiece model")
    with pytest.raises(TokenizerError) as corrupt:
        Tokenizer.from_file(bad)
    assert str(corrupt.value) == f"{bad} is not a readable SentencePiece model: replace it with a valid one."


def test_encode_literal_ids(tok: Tokenizer) -> None:
    assert tok.encode("Hello, who are you?", bos=True) == [1, 9843, 328, 1015, 657, 629, 345]
    assert tok.encode("Hello, who are you?", bos=False) == [9843, 328, 1015, 657, 629, 345]
    assert tok.encode("", bos=True) == [1]
    assert tok.encode("", bos=False) == []


def test_no_dummy_prefix(tok: Tokenizer) -> None:
    assert tok.encode("hello", bos=False) == [15115]
    assert tok.encode(" hello", bos=False) == [24176]


def test_turn_markers_are_recognised_inside_text(tok: Tokenizer) -> None:
    ids = tok.encode("[UNUSED_TOKEN_146]user\nhi[UNUSED_TOKEN_145]\n", bos=False)
    assert ids == [92543, 1008, 364, 6176, 92542, 364]


def test_literal_bos_and_eos_text_stay_text(tok: Tokenizer) -> None:
    ids = tok.encode("<s>x</s>", bos=False)
    assert ids == [43618, 28606, 654, 269, 330]
    assert tok.decode(ids) == "<s>x</s>"


def test_byte_fallback_for_emoji(tok: Tokenizer) -> None:
    assert tok.encode("😀", bos=False) == [243, 162, 155, 131]
    assert [tok.byte_value(i) for i in (243, 162, 155, 131)] == [0xF0, 0x9F, 0x98, 0x80]
    assert tok.byte_value(15115) is None


@pytest.mark.parametrize(
    "text",
    [
        "混合 text with emoji 🎉 and 中文。",
        "你好，世界! Hello, world! 👋🏽👨‍👩‍👧",
        "  leading and trailing spaces  ",
        "tabs\tand\r\nnewlines\n\n\nend",
        "rare CJK 龘㐀𠀀 and accents éß and a literal \ufffd",
    ],
)
def test_round_trip(tok: Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text, bos=True)) == text
    assert tok.decode(tok.encode(text, bos=False)) == text


def test_decode_skips_the_special_pieces_as_the_reference_does(tok: Tokenizer) -> None:
    """skip_special_tokens drops InternLM2's six special pieces (92538..92543), which would otherwise show up
    in answers; other text comes back whole."""
    text = "[UNUSED_TOKEN_146]system\nmarkers[UNUSED_TOKEN_141] vanish[UNUSED_TOKEN_145]"
    ids = tok.encode(text, bos=False)
    assert [i for i in ids if tok.is_skipped(i)] == [92543, 92538, 92542]
    assert tok.decode(ids) == "system\nmarkers vanish"
    assert all(tok.is_skipped(tok.token_id(f"[UNUSED_TOKEN_{n}]")) for n in range(141, 147))
    assert [d for i in ids if (d := IncrementalDecoder(tok).push(i)) and "UNUSED" in d] == []


def test_decode_skips_bos_eos_and_unk(tok: Tokenizer) -> None:
    assert tok.decode([1, 15115, 2]) == "hello"
    assert tok.decode([0, 15115, 0]) == "hello"
    assert tok.decode([24176, 2, 24176]) == " hello hello"


def test_incremental_decode_holds_back_split_emoji(tok: Tokenizer) -> None:
    decoder = IncrementalDecoder(tok)
    assert decoder.push(13195) == "Hi"
    assert decoder.push(262) == " "
    assert [decoder.push(i) for i in (243, 162, 155)] == ["", "", ""]
    assert decoder.push(131) == "😀"
    assert decoder.flush() == ""


def test_incremental_decode_holds_back_split_cjk(tok: Tokenizer) -> None:
    ids = tok.encode("龘㐀𠀀你好", bos=False)
    assert ids == [236, 193, 155, 230, 147, 131, 243, 163, 131, 131, 77230]
    assert stream(tok, ids) == ["", "", "龘", "", "", "㐀", "", "", "", "𠀀", "你好", ""]


def test_incremental_decode_passes_a_real_replacement_character_at_once(tok: Tokenizer) -> None:
    decoder = IncrementalDecoder(tok)
    assert decoder.push(tok.encode("\ufffd", bos=False)[0]) == "\ufffd"


def test_incremental_decode_flushes_an_unfinished_character(tok: Tokenizer) -> None:
    decoder = IncrementalDecoder(tok)
    assert decoder.push(15115) == "hello"
    assert decoder.push(243) == ""
    assert decoder.push(162) == ""
    assert decoder.flush() == tok.decode([243, 162])
    assert tok.decode([15115, 243, 162]) == "hello" + tok.decode([243, 162])


def test_incremental_decode_skips_special_ids(tok: Tokenizer) -> None:
    assert stream(tok, [1, 15115, 243, 2, 162, 155, 131, 0]) == ["", "hello", "", "", "", "", "😀", "", ""]


def test_incremental_decode_uses_a_small_window(tok: Tokenizer) -> None:
    class CountingTokenizer(Tokenizer):
        longest = 0

        def decode(self, ids: Iterable[int]) -> str:
            ids = list(ids)
            CountingTokenizer.longest = max(CountingTokenizer.longest, len(ids))
            return super().decode(ids)

    counting = CountingTokenizer(tok._sp)
    text = "A long answer mixing 中文, emoji 🎉😀 and rare 龘𠀀 characters. " * 100
    ids = tok.encode(text, bos=False)
    assert len(ids) > 2000
    assert "".join(stream(counting, ids)) == text
    assert CountingTokenizer.longest <= 8


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=0, max_size=60))
def test_incremental_decode_of_encoded_text(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text, bos=True)
    chunks = stream(tok, ids)
    assert "".join(chunks) == tok.decode(ids) == text
    if "\ufffd" not in text:
        assert not any("\ufffd" in chunk for chunk in chunks)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_incremental_decode_of_arbitrary_ids(tok: Tokenizer, data: st.DataObject) -> None:
    """Any id sequence, including broken and interleaved byte runs, streams to exactly its full decode."""
    byte_ids = [tok.token_id(f"<0x{value:02X}>") for value in range(256)]
    other = [0, 1, 2, 262, 15115, 24176, 77230, 92542, 92543, 65746, 60355]
    ids = data.draw(st.lists(st.sampled_from(byte_ids + other), max_size=40))
    assert "".join(stream(tok, ids)) == tok.decode(ids)


def test_incremental_decode_with_a_dummy_prefix_tokenizer(tmp_path: Path) -> None:
    """A tokenizer that drops the first piece's leading space (SentencePiece's default) streams exactly."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, a small corpus for a toy tokenizer\n" * 50 + "你好 世界\n" * 20)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "toy"),
        vocab_size=300,
        hard_vocab_limit=False,
        byte_fallback=True,
        add_dummy_prefix=True,
        minloglevel=2,
    )
    toy = Tokenizer.from_file(tmp_path / "toy.model")
    plain = toy.encode("hello world world", bos=False)
    assert "".join(toy.decode([i]) for i in plain) != "hello world world"
    text = "hello world 😀 你好 world"
    ids = toy.encode(text, bos=False)
    assert "".join(stream(toy, ids)) == toy.decode(ids) == text
