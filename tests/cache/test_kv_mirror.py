"""The planner's copy of the KV-reference index, over a real Redis and a Redis Cluster: it
answers as the index in Redis does, after every kind of change a worker makes, and reloads
when it missed one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from cache.block_hash import prefix_block_hashes
from cache.keys import kv_changes
from cache.kv_index import KvIndex
from cache.kv_mirror import KvMirror, hashes_of
from tests.redis_cluster import RedisTarget

A = prefix_block_hashes(list(range(16 * 6)), "tenant:a")
B = prefix_block_hashes(list(range(500, 500 + 16 * 4)), "tenant:a")


@dataclass
class Pair:
    index: KvIndex  # the worker's writer
    mirror: KvMirror  # the planner's copy


@pytest.fixture
async def pair(redis_target: RedisTarget) -> AsyncIterator[Pair]:
    writer, reader = redis_target.client(), redis_target.client()
    mirror = KvMirror(reader, timeout_s=5.0, pause_s=0.001)  # bounds for a busy machine's stalls
    yield Pair(KvIndex(writer, ttl_s=30.0, timeout_s=5.0), mirror)
    await mirror.close()
    await writer.aclose()
    await reader.aclose()


def worker() -> str:
    return "w-" + uuid.uuid4().hex[:8]


async def until(check: Callable[[], bool]) -> None:
    """Waits for the copy to get there (bounded: a hang fails, nothing is timed)."""
    async with asyncio.timeout(30):
        while not check():
            await asyncio.sleep(0.005)


async def agrees(pair: Pair, workers: list[str], hashes: list[int]) -> dict[str, int]:
    """Waits until the copy answers as Redis does now; returns the answer."""
    want = dict(await pair.index.longest_prefixes(workers, hashes) or {})
    await until(lambda: pair.mirror.longest_prefixes(workers, hashes) == want)
    return want


async def test_the_copy_answers_as_redis_after_each_kind_of_change(pair: Pair) -> None:
    w1, w2 = worker(), worker()
    await pair.index.publish(w1, A[:2], time.time())  # before it follows: loaded from the key
    pair.mirror.follow([w1, w2])
    assert await agrees(pair, [w1, w2], A) == {w1: 2, w2: 0}
    await pair.index.publish(w1, A, time.time())
    await pair.index.publish(w2, A[:3], time.time())
    assert await agrees(pair, [w1, w2], A) == {w1: 6, w2: 3}
    await pair.index.remove(w1, A[4:])
    assert await agrees(pair, [w1, w2], A) == {w1: 4, w2: 3}
    await pair.index.clear(w2)
    assert await agrees(pair, [w1, w2], A) == {w1: 4, w2: 0}
    await pair.index.replace(w1, B, time.time())  # RESET: reloaded from the key
    assert await agrees(pair, [w1], B) == {w1: 4}
    assert pair.mirror.longest_prefixes([w1], A) == {w1: 0}
    assert pair.mirror.reloads == 3  # w1's and w2's first loads, then RESET


async def test_a_missed_change_makes_it_reload(pair: Pair) -> None:
    w = worker()
    assert not await pair.mirror.first_loaded(w, 30)  # not followed: nothing to wait for
    assert pair.mirror.follow([w]) == {w}
    assert pair.mirror.follow([w]) == set()  # already followed
    assert await pair.mirror.first_loaded(w, 30)
    assert pair.mirror.longest_prefixes([w], A) == {w: 0}
    await pair.index.publish(w, A[:1], time.time())
    pair.index._seq[w] += 1  # as a write that failed: its entry never reached the stream
    await pair.index.publish(w, A, time.time())
    assert await agrees(pair, [w], A) == {w: 6}
    assert pair.mirror.reloads == 2


async def test_trimmed_blocks_leave_the_copy_too(pair: Pair) -> None:
    w = worker()
    pair.mirror.follow([w])
    await pair.index.publish(w, B, 1000.0)
    await pair.index.publish(w, A, 2000.0)
    assert await agrees(pair, [w], B) == {w: 4}
    assert await pair.index.refresh(w, now=2100.0, max_age_s=500.0, max_blocks=100) == 4
    assert await agrees(pair, [w], B) == {w: 0}
    assert pair.mirror.longest_prefixes([w], A) == {w: 6}
    # a heartbeat that trims nothing keeps the numbering whole: still no reload
    assert await pair.index.refresh(w, now=2100.0, max_age_s=500.0, max_blocks=100) == 0
    await pair.index.publish(w, B, 2200.0)
    assert await agrees(pair, [w], B) == {w: 4}
    assert pair.mirror.reloads == 1  # the first load only: trims arrive as REMOVE entries


async def test_no_answer_for_a_worker_not_followed_and_forgotten_when_gone(pair: Pair) -> None:
    w1, w2 = worker(), worker()
    await pair.index.publish(w1, A, time.time())
    assert pair.mirror.longest_prefixes([w1], A) is None  # not followed: routing falls back
    pair.mirror.follow([w1])
    await agrees(pair, [w1], A)
    # w2's copy is not loaded: left out (routing falls back for it alone), w1 still answered
    assert pair.mirror.longest_prefixes([w1, w2], A) == {w1: len(A)}
    pair.mirror.follow([w2])  # w1 left the planner
    assert pair.mirror.longest_prefixes([w1], A) is None
    assert await agrees(pair, [w2], A) == {w2: 0}


def test_blocks_read_back_as_written() -> None:
    blob = "".join(f"{h:016x}" for h in A).encode()
    assert hashes_of(blob) == tuple(A)
    assert hashes_of(b"") == ()


async def test_an_entry_it_cannot_read_makes_it_reload_not_freeze(pair: Pair) -> None:
    w = worker()
    pair.mirror.follow([w])
    await pair.index.publish(w, A[:2], time.time())
    assert await agrees(pair, [w], A) == {w: 2}
    # a foreign entry (no sequence number): the copy is dropped and loaded again
    await pair.index._redis.xadd(kv_changes(w), {"op": "add"})
    await until(lambda: pair.mirror.reloads >= 2)
    await pair.index.publish(w, A, time.time())  # and it goes on following the stream
    assert await agrees(pair, [w], A) == {w: 6}


async def test_a_follower_that_ended_is_started_again(pair: Pair) -> None:
    w = worker()
    pair.mirror.follow([w])
    await pair.index.publish(w, A, time.time())
    assert await agrees(pair, [w], A) == {w: 6}
    old = pair.mirror._followers[w]

    async def ended() -> None:
        return None

    dead = asyncio.get_running_loop().create_task(ended())  # as if a bug had ended it
    await dead
    pair.mirror._followers[w] = dead
    async with asyncio.timeout(30):
        await asyncio.wait([old])  # it sees it is no longer the follower, and stops
    pair.mirror.follow([w])  # the next registration or heartbeat
    await pair.index.publish(w, B, time.time())
    assert await agrees(pair, [w], B) == {w: 4}
