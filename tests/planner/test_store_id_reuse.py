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


def _ended_run(core: PlannerCore, pid: str, calls: tuple[str, ...] = ("old",)) -> None:
    core.register_program(pid, "acme")
    for call_id in calls:
        core.submit(pid, "acme", call_id)
        core.dispatch()
        core.complete(pid, call_id, service_s=1.0, completion_tokens=5)
    core.end_program(pid, "acme")


def _a_store(redis_target: RedisTarget) -> tuple[str, ManualClock, PlannerCore, ProgramStore]:
    """A program id, a core with a worker, and a store on `redis_target` (its client's)."""
    clock = ManualClock(100.0)
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "addr0", 1)
    store = ProgramStore(redis_target.client(timeout_s=2.0), clock, timeout_s=2.0,
                         ended_ttl_s=3600, max_backoff_s=0.05, hold_in_outage=True)
    return f"job-{uuid.uuid4().hex[:8]}", clock, core, store


@pytest.mark.parametrize("one_batch", [False, True])  # (its end waiting still, or written)
async def test_an_id_registered_again_is_a_new_run_in_redis(redis_target: RedisTarget,
                                                            one_batch: bool) -> None:
    pid, clock, core, store = _a_store(redis_target)
    client = store._redis
    task = asyncio.create_task(store.run())
    try:
        _ended_run(core, pid, ("c0", "c1"))
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


class _Blip:
    """Fails the store's next batch once armed, when the test lets it go (a Redis blip)."""

    def __init__(self, store: ProgramStore) -> None:
        self.armed = False
        self.in_flight, self.go_on = asyncio.Event(), asyncio.Event()
        real = store._apply

        async def apply(writes: list) -> None:
            if self.armed:
                self.armed = False
                self.in_flight.set()
                await self.go_on.wait()
                raise RedisConnectionError("blip")
            await real(writes)

        store._apply = apply  # type: ignore[method-assign]


@pytest.mark.parametrize("case", ["earlier run fails", "new run fails"])
async def test_a_failed_batch_leaves_the_new_run_as_it_is(redis_target: RedisTarget,
                                                          case: str) -> None:
    """Diff review F3. A batch holding a whole earlier run (registered, a call, ended) fails
    while the id is registered again: requeued, it was written after the new run's
    registration, the new run then ended in Redis with the old call. Or the new run's
    registration fails and its close (not fresh) waits meanwhile: the two merged lost
    `fresh`, and the earlier run's call stayed in the new run's hash."""
    pid, clock, core, store = _a_store(redis_target)
    client = store._redis
    blip = _Blip(store)
    task = asyncio.create_task(store.run())
    try:
        blip.armed = case == "earlier run fails"
        _ended_run(core, pid)
        first = store.publish(core.take_events())
        if blip.armed:
            await blip.in_flight.wait()
        else:
            await first  # run 1 in Redis, ended
            blip.armed = True
        clock.advance(1)
        core.register_program(pid, "acme")  # run 2, while a batch is in flight
        if case == "earlier run fails":
            core.submit(pid, "acme", "new")
        else:
            first = store.publish(core.take_events())
            await blip.in_flight.wait()
            core.close_program(pid, "acme")  # its close: ProgramRegistered(fresh=False)
        second = store.publish(core.take_events())
        blip.go_on.set()
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        await store.flush()
        meta = {k.decode(): v.decode()
                for k, v in (await client.hgetall(keys.program_meta(pid))).items()}
        calls = sorted(k.decode() for k in await client.hgetall(keys.program_calls(pid)))
        assert calls == (["new"] if case == "earlier run fails" else [])
        assert await client.ttl(keys.program_meta(pid)) == -1 and meta["state"] != "ended"
        restored = [p.program_id for p in await ProgramStore(client, ManualClock(500.0)
                                                              ).load_open()]
        assert pid in restored
    finally:
        task.cancel()
        await client.aclose()


def test_a_superseded_failed_write_leaves_its_publish_waiting() -> None:
    """A failed batch's write superseded by a newer run's (skipped on requeue) hands its
    publish number on: a caller holding the earlier publish is not told it landed while
    nothing of its key is in Redis yet (the second diff review)."""
    from planner.store_writes import snapshot

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
