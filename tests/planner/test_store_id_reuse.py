"""A program id registered again after its end (ProgramIdInUse invites it; a client's id is
its own) is a new run in Redis too: none of the earlier run's calls kept with it, and not
the expiry its end set. A restarted planner restored the new run with the old run's calls
(its first call then refused as a duplicate), and the open program's records expired
`ended_ttl_s` after the old end (store review, session 70). Real Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from cache import keys
from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.store import ProgramStore
from tests.redis_cluster import RedisTarget


def _first_run(core: PlannerCore, pid: str) -> None:
    core.register_program(pid, "acme")
    for call_id in ("c0", "c1"):
        core.submit(pid, "acme", call_id)
        core.dispatch()
        core.complete(pid, call_id, service_s=1.0, completion_tokens=5)
    core.end_program(pid, "acme")


@pytest.mark.parametrize("one_batch", [False, True])  # (its end waiting still, or written)
async def test_an_id_registered_again_is_a_new_run_in_redis(redis_target: RedisTarget,
                                                            one_batch: bool) -> None:
    pid = f"job-{uuid.uuid4().hex[:8]}"
    clock = ManualClock(100.0)
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "addr0", 1)
    client = redis_target.client(timeout_s=2.0)
    store = ProgramStore(client, clock, timeout_s=2.0, ended_ttl_s=3600, max_backoff_s=0.1,
                         hold_in_outage=True)
    task = asyncio.create_task(store.run())
    try:
        _first_run(core, pid)
        if not one_batch:
            await store.publish(core.take_events())
        clock.advance(1)
        core.register_program(pid, "acme")  # run 2: a call of an id run 1 used too
        core.submit(pid, "acme", "c1")
        await store.publish(core.take_events())
        meta, calls = keys.program_meta(pid), keys.program_calls(pid)
        assert (await client.ttl(meta), await client.ttl(calls)) == (-1, -1)
        assert await client.ttl(keys.fence(meta)) < 0
        (restored,) = [p for p in await ProgramStore(client, ManualClock(500.0)).load_open()
                       if p.program_id == pid]
        assert sorted(restored.calls) == ["c1"] and restored.calls["c1"].attempt == 1
        again = PlannerCore(ManualClock(500.0), *parse_policy("fcfs+round_robin"))
        again.restore(restored)
        again.submit(pid, "acme", "c0")  # run 2's own first use of the id: not a duplicate
    finally:
        task.cancel()
        await client.aclose()


async def test_a_failed_batch_of_an_ended_run_leaves_the_new_run_open(
        redis_target: RedisTarget) -> None:
    """A batch holding a whole earlier run (registered, a call, ended) fails while the id is
    registered again: requeued, it was written after the new run's registration, the new
    run then ended in Redis with the old call (diff review F3)."""
    pid = f"job-{uuid.uuid4().hex[:8]}"
    clock = ManualClock(100.0)
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "addr0", 1)
    client = redis_target.client(timeout_s=2.0)
    store = ProgramStore(client, clock, timeout_s=2.0, ended_ttl_s=3600, max_backoff_s=0.05,
                         hold_in_outage=True)
    real_apply = store._apply
    in_flight, go_on = asyncio.Event(), asyncio.Event()
    calls = 0

    async def flaky(writes):  # the first batch fails once the id is registered again
        nonlocal calls
        calls += 1
        if calls == 1:
            in_flight.set()
            await go_on.wait()
            raise RedisConnectionError("blip")
        return await real_apply(writes)

    store._apply = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(store.run())
    try:
        # run 1: registered, one call, ended -- all in one batch
        core.register_program(pid, "acme")
        core.submit(pid, "acme", "old")
        core.dispatch()
        core.complete(pid, "old", service_s=1.0, completion_tokens=5)
        core.end_program(pid, "acme")
        first = store.publish(core.take_events())
        await in_flight.wait()
        # run 2 of the same id, while run 1's batch is in flight
        clock.advance(1)
        core.register_program(pid, "acme")
        core.submit(pid, "acme", "new")
        second = store.publish(core.take_events())
        go_on.set()
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        await store.flush()
        meta = await client.hgetall(keys.program_meta(pid))
        calls_hash = await client.hgetall(keys.program_calls(pid))
        state = {k.decode(): v.decode() for k, v in meta.items()}.get("state")
        open_ids = [x.decode() for x in await client.zrange(keys.open_programs(), 0, -1)]
        assert state != "ended" and pid in open_ids  # run 2 is open in memory
        assert sorted(k.decode() for k in calls_hash) == ["new"]
        restored = [p.program_id for p in await ProgramStore(client, ManualClock(500.0)).load_open()]
        assert pid in restored
    finally:
        task.cancel()
        await client.aclose()


async def test_a_new_runs_failed_write_stays_fresh_when_requeued(
        redis_target: RedisTarget) -> None:
    """The new run's registration fails and its close (not fresh) waits meanwhile: the two
    merged lost `fresh`, and the earlier run's calls stayed in the new run's hash (F3)."""
    pid = f"job-{uuid.uuid4().hex[:8]}"
    clock = ManualClock(100.0)
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "addr0", 1)
    client = redis_target.client(timeout_s=2.0)
    store = ProgramStore(client, clock, timeout_s=2.0, ended_ttl_s=3600, max_backoff_s=0.05,
                         hold_in_outage=True)
    real_apply = store._apply
    in_flight, go_on = asyncio.Event(), asyncio.Event()
    state = {"fail": False}

    async def flaky(writes):
        if state["fail"]:
            state["fail"] = False
            in_flight.set()
            await go_on.wait()
            raise RedisConnectionError("blip")
        return await real_apply(writes)

    store._apply = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(store.run())
    try:
        core.register_program(pid, "acme")
        core.submit(pid, "acme", "old")
        core.dispatch()
        core.complete(pid, "old", service_s=1.0, completion_tokens=5)
        core.end_program(pid, "acme")
        await store.publish(core.take_events())  # run 1 in Redis, ended
        clock.advance(1)
        state["fail"] = True
        core.register_program(pid, "acme")  # run 2 (fresh write, in flight, fails)
        first = store.publish(core.take_events())
        await in_flight.wait()
        core.close_program(pid, "acme")  # its close: ProgramRegistered(fresh=False)
        second = store.publish(core.take_events())
        go_on.set()
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        await store.flush()
        calls_hash = await client.hgetall(keys.program_calls(pid))
        assert "old" not in {k.decode() for k in calls_hash}
        assert await client.ttl(keys.program_meta(pid)) == -1
    finally:
        task.cancel()
        await client.aclose()


def test_a_superseded_failed_write_leaves_its_publish_waiting() -> None:
    """A failed batch's write superseded by a newer run's (skipped on requeue) hands its
    publish number on: a caller holding the earlier publish is not told it landed while
    nothing of its key is in Redis yet (the second diff review)."""
    from planner.store import snapshot

    clock = ManualClock(100.0)
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"))
    store = ProgramStore(None, clock)  # type: ignore[arg-type]  (nothing is written)
    core.register_program("job", "acme")
    for event in core.take_events():
        store._queue(snapshot(event, 0.0, 0.0))
    failed, store._pending = store._pending, {}  # (a batch in flight)
    core.end_program("job", "acme")
    core.register_program("job", "acme")  # a new run, while the first run's write is out
    store._seq += 1
    for event in core.take_events():
        store._queue(snapshot(event, 0.0, 0.0))
    store._requeue(failed)
    assert min(seq for seq, _ in store._pending.values()) == min(
        seq for seq, _ in failed.values())
