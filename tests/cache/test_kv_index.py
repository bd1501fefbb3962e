"""The KV-reference index over a real Redis and a Redis Cluster.

Isolation is tested in pairs: a positive control (the index finds what a worker published
for tenant A) before the isolated case (tenant B's same prompt finds nothing of it, except
blocks of a prefix the operator declared shared).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from cache import keys
from cache.block_hash import prefix_block_hashes, prompt_block_hashes
from cache.kv_index import KvIndex
from tests.ports import closed_port
from tests.redis_cluster import RedisTarget
from workers.sim.tokenizer import tokenize

SYSTEM = "You are the support agent of a public service. Answer briefly and politely. " * 4
SECRET = "Tenant A's private ticket: account 4411-2290 was charged twice on 3 March. " * 3


@pytest.fixture
async def index(redis_target: RedisTarget) -> AsyncIterator[KvIndex]:
    client = redis_target.client()
    yield KvIndex(client, ttl_s=30.0, timeout_s=5.0)  # a bound for a busy machine's stalls
    await client.aclose()


def worker() -> str:
    return "w-" + uuid.uuid4().hex[:8]


async def test_longest_prefix_per_worker(index: KvIndex) -> None:
    w1, w2, w3 = worker(), worker(), worker()
    prompt = SYSTEM + SECRET
    full = prompt_block_hashes(tokenize, prompt, "tenant:a")
    await index.publish(w1, full, time.time())
    await index.publish(w2, full[:3], time.time())
    found = await index.longest_prefixes([w1, w2, w3], full)
    assert found == {w1: len(full), w2: 3, w3: 0}
    gap = [*full[:2], 12345, *full[3:]]  # the chain breaks at the first block not held
    assert (await index.longest_prefixes([w1], gap))[w1] == 2


async def test_lookup_survives_the_server_losing_its_scripts(index: KvIndex,
                                                             redis_target: RedisTarget) -> None:
    w = worker()
    hashes = prompt_block_hashes(tokenize, SYSTEM, "tenant:a")
    await index.publish(w, hashes, time.time())
    assert (await index.longest_prefixes([w], hashes))[w] == len(hashes)
    client = redis_target.client()
    try:
        await client.script_flush()  # as after a Redis restart (on a cluster: every master)
    finally:
        await client.aclose()
    assert (await index.longest_prefixes([w], hashes))[w] == len(hashes)


async def test_tenant_b_never_matches_tenant_a_blocks(index: KvIndex) -> None:
    w = worker()
    prompt = SYSTEM + SECRET
    a = prompt_block_hashes(tokenize, prompt, "tenant:a")
    await index.publish(w, a, time.time())
    assert (await index.longest_prefixes([w], a))[w] == len(a)  # positive control
    b = prompt_block_hashes(tokenize, prompt, "tenant:b")  # the very same prompt, from tenant B
    assert (await index.longest_prefixes([w], b))[w] == 0


async def test_a_declared_shared_prefix_is_shared_and_nothing_after_it(index: KvIndex) -> None:
    w = worker()
    shared = len(SYSTEM.encode())
    a = prompt_block_hashes(tokenize, SYSTEM + SECRET, "tenant:a", shared_bytes=shared)
    await index.publish(w, a, time.time())
    shared_blocks = len(tokenize(SYSTEM)) // 16
    # B sends A's whole prompt: it matches the declared system prompt, never A's ticket.
    b_same = prompt_block_hashes(tokenize, SYSTEM + SECRET, "tenant:b", shared_bytes=shared)
    assert (await index.longest_prefixes([w], b_same))[w] == shared_blocks
    b_own = prompt_block_hashes(tokenize, SYSTEM + "B's question", "tenant:b", shared_bytes=shared)
    assert (await index.longest_prefixes([w], b_own))[w] == shared_blocks
    # Undeclared, the same system prompt is not shared.
    b_plain = prompt_block_hashes(tokenize, SYSTEM + SECRET, "tenant:b")
    assert (await index.longest_prefixes([w], b_plain))[w] == 0


async def test_refresh_trims_by_age_and_capacity(index: KvIndex) -> None:
    w = worker()
    old = prefix_block_hashes(list(range(16 * 4)), "tenant:a")
    new = prefix_block_hashes(list(range(100, 100 + 16 * 6)), "tenant:a")
    await index.publish(w, old, 1000.0)
    await index.publish(w, new, 2000.0)
    assert await index.refresh(w, now=2100.0, max_age_s=500.0, max_blocks=100) == 4
    assert (await index.longest_prefixes([w], old))[w] == 0
    assert (await index.longest_prefixes([w], new))[w] == 6
    assert await index.refresh(w, now=2100.0, max_age_s=500.0, max_blocks=2) == 4
    assert await index.size(w) == 2


@pytest.mark.parametrize("seed", range(8))
async def test_a_capacity_trim_takes_a_chains_tail_first(index: KvIndex, seed: int) -> None:
    """Routing review 2026-12-06: one score for a whole chain let the trim take blocks of it
    in hash order (held per block 10011001: Redis's lookup said 1, the planner's copy, which
    reads leading runs, 8). Now a chain loses its tail first, as an engine's LRU evicts
    leaves first: what is held stays a leading run, whatever the hashes."""
    w = worker()
    a = prefix_block_hashes(list(range(seed * 1000, seed * 1000 + 16 * 8)), "tenant:a")
    b = prefix_block_hashes(list(range(seed * 1000 + 500, seed * 1000 + 500 + 16 * 8)),
                            "tenant:a")
    await index.publish(w, a, 100.0)
    await index.publish(w, b, 101.0)
    assert await index.refresh(w, now=102.0, max_age_s=900.0, max_blocks=12) == 4
    assert (await index.longest_prefixes([w], a))[w] == 4  # a's first 4 blocks, not others
    assert (await index.longest_prefixes([w], b))[w] == 8
    assert await index.size(w) == 12


async def test_a_silent_workers_entries_expire(redis_target: RedisTarget) -> None:
    client = redis_target.client()
    try:
        index = KvIndex(client, ttl_s=600.0, timeout_s=5.0)
        w = worker()
        hashes = prompt_block_hashes(tokenize, SYSTEM, "tenant:a")
        await index.publish(w, hashes, time.time())
        assert (await index.longest_prefixes([w], hashes))[w] == len(hashes)
        assert 0 < await client.pttl(keys.kv_blocks(w)) <= 600_000  # published with its TTL
        # no heartbeat refreshes the key: its TTL runs out (brought forward, not waited for)
        await client.pexpire(keys.kv_blocks(w), 1)
        deadline = time.monotonic() + 30
        while (await index.longest_prefixes([w], hashes))[w] != 0:
            assert time.monotonic() < deadline, "the silent worker's entries never expired"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_clear_forgets_a_workers_blocks(index: KvIndex) -> None:
    w = worker()
    hashes = prompt_block_hashes(tokenize, SYSTEM, "tenant:a")
    await index.publish(w, hashes, time.time())
    await index.clear(w)
    assert await index.size(w) == 0


async def test_redis_down_lookup_gives_up_in_bounded_time() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    try:
        index = KvIndex(client, timeout_s=0.1)
        hashes = prompt_block_hashes(tokenize, SYSTEM, "tenant:a")
        # each gives up on its own (a hang would trip the guard; no timed assertion)
        assert await asyncio.wait_for(index.longest_prefixes(["w"], hashes), 60) is None
        assert await asyncio.wait_for(index.publish("w", hashes, time.time()), 60) is False
        assert index.lookup_errors == 1 and index.publish_errors == 1
    finally:
        await client.aclose()
