"""The planner lease and fenced writes against a real Redis, and a real Redis Cluster: one
holder at a time, tokens that grow, and a deposed planner's writes refused in Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from cache import keys
from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.fencing import Batches, FencedOut, Fencing
from planner.ha import RedisLease
from planner.store import ProgramStore
from tests.redis_cluster import RedisTarget


@pytest.fixture
async def client(redis_target: RedisTarget) -> AsyncIterator[object]:
    c = redis_target.client(timeout_s=2.0)
    await c.delete(keys.planner_lease())
    yield c
    await c.aclose()


async def test_one_holder_at_a_time_and_each_acquisition_a_larger_token(client) -> None:  # type: ignore[no-untyped-def]
    a, b = RedisLease(client, "planner-a"), RedisLease(client, "planner-b")
    first = await a.acquire(10_000)
    assert first is not None
    assert await b.acquire(10_000) is None  # held
    assert await a.renew(10_000) and not await b.renew(10_000)
    await b.release()  # not b's to release
    assert await b.acquire(10_000) is None
    await a.release()
    second = await b.acquire(10_000)
    assert second is not None and second > first
    assert not await a.renew(10_000)  # a's lease is gone: its renewal is refused
    await b.release()


async def test_a_lease_not_renewed_expires_in_redis(client) -> None:  # type: ignore[no-untyped-def]
    a, b = RedisLease(client, "planner-a"), RedisLease(client, "planner-b")
    assert await a.acquire(50) is not None
    deadline = asyncio.get_running_loop().time() + 10
    while (token := await b.acquire(10_000)) is None:  # polled: expiry is Redis's to decide
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert token and not await a.renew(10_000)
    await b.release()


def _store(client, token: int | None) -> ProgramStore:  # type: ignore[no-untyped-def]
    store = ProgramStore(client, ManualClock(), timeout_s=2.0, hold_in_outage=True)
    store.fencing.token = token
    return store


async def _epoch(client) -> int:  # type: ignore[no-untyped-def]
    return int(await client.incr(keys.planner_epoch()))


async def test_a_deposed_planners_write_is_refused_and_the_new_ones_state_stays(client) -> None:  # type: ignore[no-untyped-def]
    old_token = await _epoch(client)
    old = _store(client, old_token)
    fenced: list[str] = []
    old.on_fenced = fenced.append
    writer = asyncio.create_task(old.run())
    core = PlannerCore(ManualClock(), *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "127.0.0.1:9000", 4)
    program_id = uuid.uuid4().hex
    core.register_program(program_id, "acme")
    core.submit(program_id, "acme", "c1")
    core.dispatch()
    await old.publish(core.take_events())  # c1 running, saved under the old token

    new = _store(client, await _epoch(client))  # the standby took over: it claims on load
    (program,) = [p for p in await new.load_open() if p.program_id == program_id]
    assert program.calls["c1"].state.value == "running"

    core.complete(program_id, "c1", service_s=1.0, attempt=1)  # the old one, unaware
    old.publish(core.take_events())
    with pytest.raises(FencedOut):
        await asyncio.wait_for(writer, 10)
    assert fenced and "another planner" in fenced[0]
    raw = await client.hget(keys.program_calls(program_id), "c1")
    assert json.loads(raw)["state"] == "running"  # the new planner's view, untouched


async def test_a_fence_is_per_slot_and_a_larger_token_raises_it(client) -> None:  # type: ignore[no-untyped-def]
    program_id = uuid.uuid4().hex
    meta = keys.program_meta(program_id)
    fencing = Fencing(client)

    async def write(token: int | None, value: str) -> None:
        fencing.token = token
        batches = Batches()
        batches.op("HSET", meta, "state", value)
        await fencing.run(list(batches.by_fence.values()))

    base = await _epoch(client)
    await write(base + 5, "a")
    await write(base + 5, "b")  # the same token again: allowed
    with pytest.raises(FencedOut):
        await write(base + 4, "stale")
    await write(base + 6, "c")
    assert await client.get(keys.fence(meta)) == str(base + 6).encode()
    assert await client.hget(meta, "state") == b"c"
    await client.script_flush()  # as after a Redis restart: the script is loaded again
    await write(base + 6, "d")
    await write(None, "unfenced")  # no lease (one planner, no HA): written unchecked
    assert await client.hget(meta, "state") == b"unfenced"


def test_operations_on_keys_of_two_slots_cannot_share_a_batch() -> None:
    batches = Batches()
    batches.op("HSET", keys.program_meta("p1"), "a", "1")
    batches.op("HSET", keys.program_calls("p1"), "c", "{}")
    batches.op("ZADD", keys.open_programs(), 1, "p1")
    assert len(batches.by_fence) == 2
    batch = batches.by_fence[keys.fence(keys.program_meta("p1"))]
    with pytest.raises(ValueError):
        batch.op("ZADD", keys.open_programs(), 1, "p1")
