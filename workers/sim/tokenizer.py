"""The sim model's tokenizer: deterministic, reversible, one token per short word piece.

Text is cut into word pieces (a word with its leading space, a punctuation mark, a run of
spaces); each piece's UTF-8 bytes, in chunks of at most 8, are one token whose id is the
chunk read as a big-endian integer. So ids are stable in every process (no hash()), shared
prefixes give shared id prefixes, and ids decode back to text: the sim engine, given
`input_ids` as a real engine is, reads the prompt (tools, the last turn) from them.
A NUL byte is a token of its own (id 0), so no other chunk has a leading zero byte.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from functools import lru_cache

CHUNK_BYTES = 8  # ids fit in 64 bits (the protos' uint64 input_ids)
_PIECE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")
_NUL = re.compile(rb"(\x00)")


@lru_cache(maxsize=1 << 16)  # word pieces repeat: each is encoded once
def _piece_ids(piece: str) -> tuple[int, ...]:
    ids: list[int] = []
    for part in _NUL.split(piece.encode()):
        for i in range(0, len(part), CHUNK_BYTES):
            ids.append(int.from_bytes(part[i:i + CHUNK_BYTES], "big"))
    return tuple(ids)


def tokenize(text: str) -> list[int]:
    out: list[int] = []
    for piece in _PIECE.findall(text):
        out.extend(_piece_ids(piece))
    return out


class GrowingText:
    """tokenize() of a text that grows at its end (a streamed output), each call tokenizing
    only from the start of its last word piece (which more text may extend; the pieces
    before it are final): a long output costs its length, not its length's square."""

    def __init__(self) -> None:
        self._text = ""
        self._ids: list[int] = []
        self._settled = self._settled_ids = 0  # chars, and their ids, that are final

    def ids(self, text: str) -> list[int]:
        """The ids of `text`; one that is not an extension of the last is read afresh."""
        if not text.startswith(self._text[:self._settled]):
            self._settled = self._settled_ids = 0
        del self._ids[self._settled_ids:]
        for match in _PIECE.finditer(text, self._settled):
            self._settled, self._settled_ids = match.start(), len(self._ids)
            self._ids.extend(_piece_ids(match.group()))
        self._text = text
        return self._ids

    @property
    def settled(self) -> int:
        """How many of the last `ids` are final: those before its last word piece, which
        more text may extend (a token streamed must never change)."""
        return self._settled_ids


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def token_bytes(token_id: int) -> bytes:
    if token_id < 0:
        raise ValueError(f"token id {token_id} is negative")
    if token_id == 0:
        return b"\x00"
    return token_id.to_bytes((token_id.bit_length() + 7) // 8, "big")


def detokenize(ids: Iterable[int]) -> str:
    """The text of `ids`; bytes that are not UTF-8 (ids no text gives) become U+FFFD."""
    return b"".join(token_bytes(i) for i in ids).decode("utf-8", errors="replace")


class IncrementalDetokenizer:
    """Text of a token stream, one token at a time (a character may span two tokens)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        return self._decoder.decode(token_bytes(token_id))
