"""The one block-hashing function that planner, workers and engines agree on.

A prompt's tokens are cut into fixed-size blocks; block i's hash chains block i-1's hash
with block i's tokens, so a hash names a whole prefix, not just one block. The chain is
seeded with a salt (the tenant's, or an operator-declared shared salt), so equal prompts
of different tenants never produce equal hashes. Stable across processes: blake2b, never
Python's hash().
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Callable, Container, Sequence

DEFAULT_BLOCK_SIZE = 16


def salt_seed(salt: str) -> int:
    return int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")


def _token_bytes(tokens: Sequence[int]) -> bytes | memoryview:
    """What a block's hash reads of its tokens: each an unsigned 64-bit integer in native
    byte order (array('Q')). A packed sequence (an array('Q'), as the sim engine holds its
    keys, or a memoryview of format 'Q': workers/sim/token_ids.py) is read as it is, with no
    copy; an id outside [0, 2**64) is refused (OverflowError, as array('Q') refuses it)."""
    if isinstance(tokens, memoryview) and tokens.format == "Q":
        return tokens.cast("B")
    if isinstance(tokens, array) and tokens.typecode == "Q":
        return memoryview(tokens).cast("B")
    return array("Q", tokens).tobytes()


def chain_hash(parent: int, block: Sequence[int]) -> int:
    h = hashlib.blake2b(parent.to_bytes(8, "little"), digest_size=8)
    h.update(_token_bytes(block))
    return int.from_bytes(h.digest(), "little")


def chain_hashes(parent: int, tokens: Sequence[int], block_size: int = DEFAULT_BLOCK_SIZE) -> list[int]:
    """The chain continued over every complete block of `tokens`: [chain_hash(parent, block
    0), chain_hash(that, block 1), ...], the same values, with the tokens packed once (not at
    all if they come packed)."""
    new = hashlib.blake2b(digest_size=8).copy  # copying a fresh state: cheaper than a new one
    buf = _token_bytes(tokens[:len(tokens) // block_size * block_size])
    digest = parent.to_bytes(8, "little")
    digests: list[bytes] = []
    add = digests.append
    for (block,) in struct.iter_unpack(f"{8 * block_size}s", buf):  # each block's bytes
        h = new()
        h.update(digest)  # a hash's 8 digest bytes are the next block's parent
        h.update(block)
        digest = h.digest()
        add(digest)
    return _little_endian_ints(b"".join(digests))


def _little_endian_ints(data: bytes) -> list[int]:
    """The unsigned 64-bit little-endian integers in `data` (int.from_bytes of each 8 bytes,
    in one call)."""
    ints = array("Q")
    ints.frombytes(data)
    if sys.byteorder == "big":
        ints.byteswap()
    return ints.tolist()


def block_hashes(tokens: Sequence[int], block_size: int = DEFAULT_BLOCK_SIZE,
                 salt: str = "") -> list[int]:
    """Hashes of every complete block of `tokens` (a trailing partial block has none)."""
    return prefix_block_hashes(tokens, salt, block_size=block_size)


SHARED_SALT = "ost:shared"  # the salt of operator-declared shared prefixes, one for all tenants


def join_salt(parent: int, salt: str) -> int:
    """Where a shared prefix ends, the tenant's salt joins the chain."""
    h = hashlib.blake2b(parent.to_bytes(8, "little"), digest_size=8)
    h.update(b"salt:" + salt.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little")


def chain_seed(salt: str, shared_blocks: int) -> int:
    """The parent of block 0: the tenant's salt, or the shared salt when blocks are shared."""
    return salt_seed(SHARED_SALT if shared_blocks > 0 else salt)


def next_block_hash(parent: int, index: int, block: Sequence[int], salt: str,
                    shared_blocks: int) -> int:
    """Hash of block `index` (0-based) of a prompt whose first `shared_blocks` blocks lie in
    a declared shared prefix, given the hash of block index-1 (chain_seed for block 0)."""
    if index == shared_blocks and index > 0:
        parent = join_salt(parent, salt)
    return chain_hash(parent, block)


def prefix_block_hashes(tokens: Sequence[int], salt: str, *, shared_tokens: int = 0,
                        block_size: int = DEFAULT_BLOCK_SIZE) -> list[int]:
    """The KV-reference index's hashes of a prompt's token blocks, as the gateway computes
    them for routing and workers for publishing (from their engine's KV events, or on
    completion for engines without).

    Blocks lying wholly inside the first `shared_tokens` tokens (an operator-declared shared
    prefix) chain from SHARED_SALT, so every tenant computes the same hashes for them; the
    tenant's `salt` joins the chain at the first block past the shared prefix (or seeds it
    when nothing is shared), so no block after it can equal another tenant's. With nothing
    shared this equals block_hashes(tokens, block_size, salt), the sim engine's own hashing.
    """
    return extend_prefix_block_hashes((), tokens, salt, shared_tokens=shared_tokens,
                                      block_size=block_size)


def extend_prefix_block_hashes(known: Sequence[int], tokens: Sequence[int], salt: str, *,
                               shared_tokens: int = 0,
                               block_size: int = DEFAULT_BLOCK_SIZE) -> list[int]:
    """prefix_block_hashes(tokens, ...), given `known`: those of a prefix of `tokens` (e.g.
    the prompt a conversation's next prompt extends), so only the new blocks are hashed."""
    if block_size < 1:
        raise ValueError("block_size must be positive")
    if shared_tokens < 0:
        raise ValueError("shared_tokens must not be negative")
    shared_blocks = shared_tokens // block_size
    total = len(tokens) // block_size
    out = list(known[:total])
    parent = out[-1] if out else chain_seed(salt, shared_blocks)
    if len(out) < min(shared_blocks, total):  # blocks inside the shared prefix
        out += chain_hashes(parent, tokens[len(out) * block_size:shared_blocks * block_size],
                            block_size)
        parent = out[-1]
    if len(out) < total:
        if len(out) == shared_blocks > 0:
            parent = join_salt(parent, salt)  # next_block_hash's join, once
        out += chain_hashes(parent, tokens[len(out) * block_size:total * block_size], block_size)
    return out


def held_prefix_blocks(held: Container[int], hashes: Sequence[int], guess: int = 0) -> int:
    """How many leading blocks of a prompt (its chained `hashes`) are in `held`. A chained
    hash names its whole prefix, so a set filled from whole prefixes (an engine's radix cache,
    which evicts leaves first; a router's record of prompts sent) holds a leading run, and a
    binary search finds its end: O(log n) lookups. `guess`: an answer to try first (another
    worker's for the same prompt, say): two lookups when it is right."""
    lo, hi = 0, len(hashes)
    if not hi or hashes[0] not in held:  # the commonest answers, in one lookup each
        return 0
    if hashes[-1] in held:
        return hi
    if 0 < guess < hi:
        if hashes[guess - 1] not in held:
            hi = guess - 1
        elif hashes[guess] not in held:
            return guess
        else:
            lo = guess + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if hashes[mid - 1] in held:
            lo = mid
        else:
            hi = mid - 1
    return lo


def shared_token_count(tokens: Sequence[int], shared_prefix_tokens: Sequence[int]) -> int:
    """How many leading tokens of a prompt come from its declared shared prefix: the common
    prefix of the two tokenizations (a token straddling the prefix's end is not shared)."""
    n = 0
    for a, b in zip(tokens, shared_prefix_tokens, strict=False):
        if a != b:
            break
        n += 1
    return n


def block_hex(block_hash: int) -> str:
    """A block hash as it is stored in Redis (16 hex digits)."""
    return f"{block_hash:016x}"


Tokenize = Callable[[str], list[int]]


def tokenize_prompt(tokenize: Tokenize, prompt: str, shared_bytes: int = 0) -> tuple[list[int], int]:
    """A prompt's token ids under the served model's tokenizer, and how many leading ones
    come from the declared shared prefix it starts with (`shared_bytes`: that prefix's UTF-8
    length, 0: none)."""
    tokens = tokenize(prompt)
    if shared_bytes <= 0:
        return tokens, 0
    prefix = prompt.encode("utf-8", "surrogatepass")[:shared_bytes].decode("utf-8", "ignore")
    return tokens, shared_token_count(tokens, tokenize(prefix))


def prompt_block_hashes(tokenize: Tokenize, prompt: str, salt: str, shared_bytes: int = 0,
                        block_size: int = DEFAULT_BLOCK_SIZE) -> list[int]:
    """prefix_block_hashes of a prompt's text under the served model's tokenizer (which must
    be the engine's: the index matches the token ids its KV events report)."""
    tokens, shared = tokenize_prompt(tokenize, prompt, shared_bytes)
    return prefix_block_hashes(tokens, salt, shared_tokens=shared, block_size=block_size)
