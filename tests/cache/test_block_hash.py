"""The shared block-hashing function: chained, salted per tenant, shared only where declared."""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence

import pytest

from cache.block_hash import (
    block_hashes,
    block_hex,
    chain_hash,
    chain_hashes,
    chain_seed,
    extend_prefix_block_hashes,
    next_block_hash,
    prefix_block_hashes,
    prompt_block_hashes,
    shared_token_count,
)
from workers.sim.token_ids import pack, unsigned
from workers.sim.tokenizer import tokenize

SYSTEM = list(range(1000, 1050))  # 3 whole 16-token blocks, and 2 tokens of a fourth
TOKENS = SYSTEM + list(range(5000, 5100))


def test_chained_and_deterministic() -> None:
    a = prefix_block_hashes(TOKENS, "tenant:a")
    assert a == prefix_block_hashes(TOKENS, "tenant:a")
    assert len(a) == len(TOKENS) // 16
    extended = prefix_block_hashes(TOKENS + [7] * 40, "tenant:a")
    assert extended[:len(a)] == a  # a hash names a whole prefix: extensions keep it
    changed = prefix_block_hashes([9, *TOKENS[1:]], "tenant:a")
    assert not set(changed) & set(a)  # a change in block 0 changes every later block


def test_unshared_hashes_are_the_sim_engines_own() -> None:
    assert prefix_block_hashes(TOKENS, "t", block_size=8) == block_hashes(TOKENS, 8, "t")


@pytest.mark.parametrize(("shared_tokens", "equal_blocks"), [
    (0, 0),      # nothing declared: tenants share nothing
    (15, 0),     # less than one block declared: nothing whole to share
    (16, 1),
    (50, 3),     # the block straddling the end of the prefix is the tenant's
    (48, 3),
])
def test_only_declared_shared_blocks_are_equal_across_tenants(shared_tokens: int,
                                                               equal_blocks: int) -> None:
    a = prefix_block_hashes(TOKENS, "tenant:a", shared_tokens=shared_tokens)
    b = prefix_block_hashes(TOKENS, "tenant:b", shared_tokens=shared_tokens)
    assert a[:equal_blocks] == b[:equal_blocks]
    assert not set(a[equal_blocks:]) & set(b)  # past the shared prefix, nothing is common


def test_incremental_form_equals_the_whole_prompt_form() -> None:
    for shared in (0, 16, 50):
        expect = prefix_block_hashes(TOKENS, "tenant:a", shared_tokens=shared)
        shared_blocks = shared // 16
        parent, got = chain_seed("tenant:a", shared_blocks), []
        for i in range(len(TOKENS) // 16):
            parent = next_block_hash(parent, i, TOKENS[i * 16:(i + 1) * 16], "tenant:a",
                                     shared_blocks)
            got.append(parent)
        assert got == expect


def test_hash_values_are_pinned() -> None:
    """Values the gateway, workers, Redis and the sim engines agree on: a faster hashing
    must give exactly these (they were computed by the block-at-a-time chain)."""
    assert [block_hex(h) for h in prefix_block_hashes(TOKENS, "tenant:a", shared_tokens=50)][
        ::8] == ["4896373969c210a3", "1174b22e111e5617"]
    assert block_hex(prefix_block_hashes(TOKENS, "tenant:a")[-1]) == "29f818169b6e1ad9"


@pytest.mark.parametrize("seed", range(6))
def test_packed_chain_equals_the_block_at_a_time_chain(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        bs = rng.choice([1, 3, 16])
        tokens = [rng.randrange(1 << 63) for _ in range(rng.randrange(0, 120))]
        shared = rng.choice([0, rng.randrange(len(tokens) + 1), len(tokens) + 20])
        shared_blocks = shared // bs
        parent, expect = chain_seed("t", shared_blocks), []
        for i in range(len(tokens) // bs):
            parent = next_block_hash(parent, i, tokens[i * bs:(i + 1) * bs], "t", shared_blocks)
            expect.append(parent)
        for form in packed_forms(tokens):
            assert prefix_block_hashes(form, "t", shared_tokens=shared, block_size=bs) == expect
            known = rng.randrange(len(expect) + 1)
            assert extend_prefix_block_hashes(expect[:known], form, "t", shared_tokens=shared,
                                              block_size=bs) == expect
        chained, p = [], 7
        for i in range(len(tokens) // bs):
            p = chain_hash(p, tokens[i * bs:(i + 1) * bs])
            chained.append(p)
        assert all(chain_hashes(7, form, bs) == chained for form in packed_forms(tokens))
    ids = range(10, 90)  # the cluster simulator's token ids come as ranges
    assert prefix_block_hashes(ids, "t") == prefix_block_hashes(list(ids), "t")


def packed_forms(tokens: list[int]) -> list[Sequence[int]]:
    """Every form the hashing takes: a list, a tuple, and packed, as the sim engine and the
    cluster simulator hold token ids (workers/sim/token_ids.py)."""
    return [tokens, tuple(tokens), pack(tokens), array("Q", tokens), unsigned(pack(tokens))]


def test_packed_forms_give_the_pinned_values_and_refuse_negative_ids() -> None:
    for form in packed_forms(TOKENS):
        assert block_hex(prefix_block_hashes(form, "tenant:a")[-1]) == "29f818169b6e1ad9"
        assert chain_hash(3, form[16:32]) == chain_hash(3, TOKENS[16:32])
    for bad in ([5, -1], (5, -1), [5, 1 << 64]):  # as array('Q') refuses them
        with pytest.raises(OverflowError):
            prefix_block_hashes(bad * 16, "t")
        with pytest.raises(OverflowError):
            chain_hash(0, bad)


def test_shared_blocks_do_not_depend_on_the_text_after_them() -> None:
    a = prefix_block_hashes([*SYSTEM, 1, 2, 3], "tenant:a", shared_tokens=50)
    b = prefix_block_hashes([*SYSTEM, 4, 5, 6, 7], "tenant:b", shared_tokens=50)
    assert a[:3] == b[:3]


def test_prompt_text_is_hashed_through_the_tokenizer() -> None:
    system = "You are a careful assistant who answers in French. " * 6
    prompt = system + "What is the capital of Peru?"
    shared = len(system.encode())
    a = prompt_block_hashes(tokenize, prompt, "tenant:a", shared)
    b = prompt_block_hashes(tokenize, prompt, "tenant:b", shared)
    n = len(tokenize(system)) // 16
    assert n >= 3 and a[:n] == b[:n] and not set(a[n:]) & set(b)
    assert a == prefix_block_hashes(tokenize(prompt), "tenant:a",
                                    shared_tokens=len(tokenize(system)))


@pytest.mark.parametrize(("tokens", "prefix", "n"), [
    ([1, 2, 3, 4], [1, 2], 2),
    ([1, 2, 3, 4], [1, 9], 1),  # the prefix ends inside a token: that token is not shared
    ([1, 2], [1, 2, 3], 2),
    ([1, 2], [], 0),
])
def test_shared_token_count(tokens: list[int], prefix: list[int], n: int) -> None:
    assert shared_token_count(tokens, prefix) == n


def test_bad_arguments_and_hex_form() -> None:
    with pytest.raises(ValueError):
        prefix_block_hashes(TOKENS, "s", block_size=0)
    with pytest.raises(ValueError):
        prefix_block_hashes(TOKENS, "s", shared_tokens=-1)
    assert block_hex(255) == "00000000000000ff"
