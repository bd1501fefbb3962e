"""The shared block-hashing function: chained, salted per tenant, shared only where declared."""

from __future__ import annotations

import pytest

from cache.block_hash import block_hex, text_block_hashes

SYSTEM = "S" * 200  # 3 whole 64-byte blocks, and 8 bytes of a fourth
PROMPT = SYSTEM + "the user's own text, " * 10


def test_chained_and_deterministic() -> None:
    a = text_block_hashes(PROMPT, "tenant:a")
    assert a == text_block_hashes(PROMPT, "tenant:a")
    assert len(a) == len(PROMPT.encode()) // 64
    extended = text_block_hashes(PROMPT + "more text" * 20, "tenant:a")
    assert extended[:len(a)] == a  # a hash names a whole prefix: extensions keep it
    changed = text_block_hashes("X" + PROMPT[1:], "tenant:a")
    assert not set(changed) & set(a)  # a change in block 0 changes every later block


@pytest.mark.parametrize(("shared_bytes", "equal_blocks"), [
    (0, 0),      # nothing declared: tenants share nothing
    (63, 0),     # less than one block declared: nothing whole to share
    (64, 1),
    (200, 3),    # the block straddling the end of the prefix is the tenant's
    (192, 3),
])
def test_only_declared_shared_blocks_are_equal_across_tenants(shared_bytes: int,
                                                               equal_blocks: int) -> None:
    a = text_block_hashes(PROMPT, "tenant:a", shared_bytes=shared_bytes)
    b = text_block_hashes(PROMPT, "tenant:b", shared_bytes=shared_bytes)
    assert a[:equal_blocks] == b[:equal_blocks]
    assert not set(a[equal_blocks:]) & set(b)  # past the shared prefix, nothing is common


def test_shared_blocks_do_not_depend_on_the_text_after_them() -> None:
    a = text_block_hashes(SYSTEM + "question one", "tenant:a", shared_bytes=200)
    b = text_block_hashes(SYSTEM + "something else entirely", "tenant:b", shared_bytes=200)
    assert a[:3] == b[:3]


def test_bad_arguments_and_hex_form() -> None:
    with pytest.raises(ValueError):
        text_block_hashes(PROMPT, "s", block_chars=0)
    with pytest.raises(ValueError):
        text_block_hashes(PROMPT, "s", shared_bytes=-1)
    assert block_hex(255) == "00000000000000ff"
