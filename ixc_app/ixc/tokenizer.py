"""The InternLM2 SentencePiece tokenizer, loaded straight from a checkpoint's `tokenizer.model`.

The reference wraps this file in a transformers slow tokenizer with remote code; for every prompt it builds,
that wrapper adds BOS (when asked) in front of SentencePiece's own encoding, so SentencePiece alone gives the
same ids without transformers. One deliberate difference: the wrapper would turn a literal `<s>` or `</s>`
typed in text into BOS/EOS, while SentencePiece spells them out as ordinary characters, so text cannot forge
them.
The turn markers `[UNUSED_TOKEN_146]` and `[UNUSED_TOKEN_145]` are user-defined pieces that SentencePiece
recognises inside text; the template strips them from untrusted text for that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

TURN_START = "[UNUSED_TOKEN_146]"
TURN_END = "[UNUSED_TOKEN_145]"
SPECIAL_PIECES = tuple(f"[UNUSED_TOKEN_{n}]" for n in range(141, 147))
"""InternLM2's special tokens (plugin, interpreter, action start/end, turn end/start): the reference's
tokenizer declares them special, so its decode with skip_special_tokens drops them."""
TOKENIZER_FILE = "tokenizer.model"


class TokenizerError(ValueError):
    """The tokenizer file is missing or unusable, or a piece it should hold is absent."""


class Tokenizer:
    """Encode and decode with the checkpoint's SentencePiece model; special ids are looked up by piece."""

    def __init__(self, processor: spm.SentencePieceProcessor) -> None:
        self._sp = processor
        # Ids the reference drops when it decodes with skip_special_tokens (its pad token is EOS).
        specials = (processor.piece_to_id(piece) for piece in SPECIAL_PIECES)
        self._skip = frozenset(
            i for i in (processor.bos_id(), processor.eos_id(), processor.unk_id()) if i >= 0
        ) | frozenset(i for i in specials if i != processor.unk_id())
        self._byte_values = {i: int(processor.id_to_piece(i)[3:5], 16) for i in _byte_ids(processor)}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load `path`, either the `tokenizer.model` file itself or the checkpoint folder that holds it."""
        file = Path(path)
        if file.is_dir():
            file = file / TOKENIZER_FILE
        if not file.is_file():
            raise TokenizerError(
                f"No tokenizer found at {file}: point to a checkpoint folder with {TOKENIZER_FILE}."
            )
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(str(file))
        except (OSError, RuntimeError) as exc:
            raise TokenizerError(
                f"{file} is not a readable SentencePiece model: replace it with a valid one."
            ) from exc
        return cls(processor)

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    @property
    def vocab_size(self) -> int:
        return self._sp.vocab_size()

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Generation ends on EOS or on the end-of-turn marker, as in the reference `chat()`."""
        return (self.eos_id, self.token_id(TURN_END))

    def encode(self, text: str, bos: bool) -> list[int]:
        ids = self._sp.encode(text)
        return [self.bos_id, *ids] if bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` without BOS, EOS, UNK and the special pieces, like the reference's decode with
        skip_special_tokens."""
        return self._sp.decode([i for i in ids if i not in self._skip])

    def token_id(self, piece: str) -> int:
        token = self._sp.piece_to_id(piece)
        if token == self._sp.unk_id() and piece != self._sp.id_to_piece(token):
            raise TokenizerError(f"The tokenizer has no piece {piece!r}: this is not an InternLM2 tokenizer.")
        return token

    def byte_value(self, token_id: int) -> int | None:
        """The byte a byte-fallback token stands for, None for any other token."""
        return self._byte_values.get(token_id)

    def is_skipped(self, token_id: int) -> bool:
        """Whether `decode` drops this id (BOS, EOS, UNK, the special pieces)."""
        return token_id in self._skip


def _byte_ids(processor: spm.SentencePieceProcessor) -> list[int]:
    return [i for i in range(processor.vocab_size()) if processor.is_byte(i)]


class IncrementalDecoder:
    """Turns a stream of generated ids into text deltas that never end inside a character.

    A character outside the vocabulary arrives as up to four byte-fallback tokens; decoding part of them gives
    U+FFFD. So the decoder holds back while the trailing bytes are an unfinished UTF-8 sequence and otherwise
    emits what is new. It decodes only a short window (ids since the previous emission, with the ids of that
    emission as a prefix), so each step costs the same however long the answer gets; the prefix keeps
    tokenizers that drop a leading space of the first piece (dummy prefix) exact. The concatenation of all
    `push` results and `flush` equals `Tokenizer.decode` of all ids.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._window: list[int] = []
        self._read = 0
        self._trailing_bytes: list[int] = []

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text it completes (empty while a character is unfinished)."""
        if self._tokenizer.is_skipped(token_id):
            return ""
        self._window.append(token_id)
        value = self._tokenizer.byte_value(token_id)
        if value is None:
            self._trailing_bytes.clear()
        else:
            self._trailing_bytes.append(value)
            if _unfinished_utf8(self._trailing_bytes):
                return ""
        return self._emit()

    def flush(self) -> str:
        """Whatever is still held back (an unfinished character decodes to U+FFFD, as `decode` gives it)."""
        self._trailing_bytes.clear()
        return self._emit()

    def _emit(self) -> str:
        decode = self._tokenizer.decode
        prefix = decode(self._window[: self._read])
        text = decode(self._window)[len(prefix) :]
        self._window = self._window[self._read :]
        self._read = len(self._window)
        return text


def _unfinished_utf8(data: list[int]) -> bool:
    """Whether `data` ends with the start of a multi-byte UTF-8 character that more bytes could complete."""
    continuation = 0
    for byte in reversed(data[-4:]):
        if 0x80 <= byte < 0xC0:
            continuation += 1
            continue
        if 0xC0 <= byte < 0xE0:
            return continuation < 1
        if 0xE0 <= byte < 0xF0:
            return continuation < 2
        if 0xF0 <= byte < 0xF8:
            return continuation < 3
        return False
    return False
