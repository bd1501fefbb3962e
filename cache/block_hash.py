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
SHARED_SALT = "ost:shared"  # the salt of operator-declared shared prefixes, one for all tenants


def _chain_bytes(parent: int, data: bytes) -> int:
    h = hashlib.blake2b(parent.to_bytes(8, "little"), digest_size=8)
    h.update(data)
    return int.from_bytes(h.digest(), "little")


def text_block_hashes(text: str, salt: str, block_chars: int = DEFAULT_BLOCK_CHARS,
                      shared_bytes: int = 0) -> list[int]:
    """Chained hashes of fixed-size byte blocks of a prompt's UTF-8 text, for routing and
    the KV-reference index.

    The gateway has no model tokenizer; like SGLang's router (whose approximate tree is
    over characters) it matches prompts on text. Blocks lying wholly inside the first
    `shared_bytes` (an operator-declared shared prefix) chain from SHARED_SALT, so every
    tenant computes the same hashes for them; the tenant's `salt` joins the chain at the
    first block past the shared prefix (or at the first block when nothing is shared), so
    no block after it can equal another tenant's.
    """
    if block_chars < 1:
        raise ValueError("block_chars must be positive")
    if shared_bytes < 0:
        raise ValueError("shared_bytes must not be negative")
    data = text.encode("utf-8", "surrogatepass")
    shared_blocks = shared_bytes // block_chars
    out: list[int] = []
    parent = salt_seed(SHARED_SALT)
    for i, start in enumerate(range(0, len(data) - block_chars + 1, block_chars)):
        if i == shared_blocks:  # leaving the shared prefix: the tenant's salt joins the chain
            parent = _chain_bytes(parent, b"salt:" + salt.encode("utf-8", "surrogatepass"))
        parent = _chain_bytes(parent, data[start:start + block_chars])
        out.append(parent)
    return out


def block_hex(block_hash: int) -> str:
    """A block hash as it is stored in Redis (16 hex digits)."""
    return f"{block_hash:016x}"
