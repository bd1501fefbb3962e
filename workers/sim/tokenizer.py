"""A deterministic stand-in tokenizer for the sim engine: one token per word piece.

Token ids are stable content hashes (never Python's hash()), so the same text gives the
same ids in every process, and shared prefixes give shared id prefixes.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

VOCAB_SIZE = 128_000
_PIECE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")


@lru_cache(maxsize=1 << 16)  # word pieces repeat: the digest is paid once per distinct piece
def _token_id(piece: str) -> int:
    digest = hashlib.blake2b(piece.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") % VOCAB_SIZE


def tokenize(text: str) -> list[int]:
    return [_token_id(p) for p in _PIECE.findall(text)]


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))
