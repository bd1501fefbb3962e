"""The in-memory KV-reference index: fed by engine KV events, answering as Redis does."""

from __future__ import annotations

import pytest

from cache.block_hash import (
    extend_prefix_block_hashes,
    held_prefix_blocks,
    prefix_block_hashes,
    salt_seed,
)
from cache.kv_holdings import KvHoldings
from workers.kv_events import AllBlocksCleared, BlockRemoved, BlockStored
from workers.sim.radix import RadixCache

TOKENS = list(range(1000, 1000 + 16 * 6))


def test_stored_removed_and_cleared_blocks_change_what_a_worker_holds() -> None:
    hashes = prefix_block_hashes(TOKENS, "tenant:a")
    kv = KvHoldings()
    kv.apply("w1", [BlockStored(tuple(hashes[:4]), None)])
    assert kv.longest_prefixes(["w1", "w2"], hashes) == {"w1": 4, "w2": 0}
    kv.apply("w1", [BlockRemoved(tuple(hashes[2:4]))])
    assert kv.longest_prefix("w1", hashes) == 2
    kv.apply("w1", [BlockStored(tuple(hashes[2:6]), hashes[1]), AllBlocksCleared()])
    assert kv.longest_prefix("w1", hashes) == 0 and kv.size("w1") == 0
    assert kv.longest_prefix("w1", []) == 0


@pytest.mark.parametrize("held", [0, 1, 3, 5, 6])
def test_the_answer_is_the_leading_run_of_held_blocks(held: int) -> None:
    hashes = prefix_block_hashes(TOKENS, "tenant:a")
    kv = KvHoldings()
    kv.apply("w", [BlockStored(tuple(hashes[:held]), None)])
    assert kv.longest_prefix("w", hashes) == held
    other = prefix_block_hashes(TOKENS, "tenant:b")  # another tenant's salt: nothing shared
    assert kv.longest_prefix("w", other) == 0


@pytest.mark.parametrize("held", range(7))
def test_a_guess_changes_no_answer(held: int) -> None:
    """held_prefix_blocks tries `guess` first (right, too low, too high, out of range)."""
    hashes = prefix_block_hashes(TOKENS, "tenant:a")
    for guess in range(-1, len(hashes) + 2):
        assert held_prefix_blocks(set(hashes[:held]), hashes, guess) == held


def test_longest_prefixes_answers_as_longest_prefix_for_each_worker() -> None:
    hashes = prefix_block_hashes(TOKENS, "tenant:a")
    kv = KvHoldings()
    workers = [f"w{held}" for held in range(len(hashes) + 1)] + ["unknown"]
    for held in range(len(hashes) + 1):
        kv.apply(f"w{held}", [BlockStored(tuple(hashes[:held]), None)])
    got = kv.longest_prefixes(workers, hashes)
    assert list(got) == workers
    assert got == {w: kv.longest_prefix(w, hashes) for w in workers}
    assert [got[f"w{held}"] for held in range(len(hashes) + 1)] == list(range(len(hashes) + 1))
    assert kv.longest_prefixes(workers, []) == dict.fromkeys(workers, 0)


def test_fed_by_a_sim_engine_radix_cache_it_matches_the_gateways_hashes() -> None:
    cache = RadixCache(10_000, 16)
    salt = "tenant:a"
    cache.insert((0, *TOKENS[:70]), 0.0, seed=salt_seed(salt))  # position 0: the salt token
    kv = KvHoldings()
    kv.apply("w", cache.take_events())
    assert kv.longest_prefix("w", prefix_block_hashes(TOKENS, salt)) == 70 // 16


@pytest.mark.parametrize("known", [0, 1, 4, 6])
def test_extending_known_hashes_equals_hashing_from_scratch(known: int) -> None:
    full = prefix_block_hashes(TOKENS + [7] * 40, "tenant:a", shared_tokens=32)
    start = prefix_block_hashes(TOKENS[:known * 16], "tenant:a", shared_tokens=32)
    assert extend_prefix_block_hashes(start, TOKENS + [7] * 40, "tenant:a",
                                      shared_tokens=32) == full
