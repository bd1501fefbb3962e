"""A worker's start (workers/main.py `clear_index`): what a previous run of it indexed in a
real Redis is cleared even when Redis does not answer at first."""

from __future__ import annotations

import asyncio

from cache.kv_index import KvIndex
from tests.conftest import OwnRedis
from workers.main import clear_index


async def test_the_previous_runs_blocks_are_cleared_once_redis_answers(own_redis: OwnRedis) -> None:
    index = KvIndex(own_redis.client, ttl_s=30.0, timeout_s=0.5)
    assert await index.publish("w0", [11, 12, 13], 1.0)  # the previous run's
    stalled = own_redis.server.paused()
    stalled.__enter__()
    # Redis comes back a second into the worker's start (well within its wait)
    asyncio.get_running_loop().call_later(1.0, stalled.__exit__, None, None, None)
    assert await clear_index(index, "w0", wait_s=60.0)
    assert await index.size("w0") == 0


async def test_a_worker_starts_all_the_same_when_redis_stays_away(own_redis: OwnRedis) -> None:
    index = KvIndex(own_redis.client, ttl_s=30.0, timeout_s=0.5)
    assert await index.publish("w0", [11, 12, 13], 1.0)
    with own_redis.server.paused():
        assert await clear_index(index, "w0", wait_s=0.5) is False
    # (what the stalled server had read of the tries, it runs once resumed: no check)
