"""The one block-hashing function that planner, workers and engines agree on.

A prompt's tokens are cut into fixed-size blocks; block i's hash chains block i-1's hash
with block i's tokens, so a hash names a whole prefix, not just one block. The chain is
seeded with a salt (the tenant's, or an operator-declared shared salt), so equal prompts
of different tenants never produce equal hashes. Stable across processes: blake2b, never
Python's hash().
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

DEFAULT_BLOCK_SIZE = 16


def salt_seed(salt: str) -> int:
    return int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")


def chain_hash(parent: int, block: Sequence[int]) -> int:
    h = hashlib.blake2b(parent.to_bytes(8, "little"), digest_size=8)
    h.update(array("q", block).tobytes())
    return int.from_bytes(h.digest(), "little")


def block_hashes(tokens: Sequence[int], block_size: int = DEFAULT_BLOCK_SIZE,
                 salt: str = "") -> list[int]:
    """Hashes of every complete block of `tokens` (a trailing partial block has none)."""
    if block_size < 1:
        raise ValueError("block_size must be positive")
    out: list[int] = []
    parent = salt_seed(salt)
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = chain_hash(parent, tokens[start:start + block_size])
        out.append(parent)
    return out


DEFAULT_BLOCK_CHARS = 64


def text_block_hashes(text: str, salt: str, block_chars: int = DEFAULT_BLOCK_CHARS) -> list[int]:
    """Chained hashes of fixed-size character blocks of a prompt, for routing.

    The gateway has no model tokenizer; like SGLang's router (whose approximate tree is
    over characters) it matches prompts on text. Salted, so tenants never match each other.
    """
    if block_chars < 1:
        raise ValueError("block_chars must be positive")
    data = text.encode("utf-8", "surrogatepass")
    out: list[int] = []
    parent = salt_seed(salt)
    for start in range(0, len(data) - block_chars + 1, block_chars):
        h = hashlib.blake2b(parent.to_bytes(8, "little"), digest_size=8)
        h.update(data[start:start + block_chars])
        parent = int.from_bytes(h.digest(), "little")
        out.append(parent)
    return out
