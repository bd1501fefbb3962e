"""A lone planner's start (planner/main.py `_restore`): the open programs left in a real
Redis are read back even when Redis does not answer at first (a helper's review: one failed
read, Redis slow for a moment on a busy machine, lost every open program for good)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cache.redis_client import FAILURES
from ostinato.clock import ManualClock
from planner.core import PlannerCore, PlannerError
from planner.core.selection import parse_policy
from planner.main import _restore
from planner.store import ProgramStore
from tests.conftest import OwnRedis


def _core() -> PlannerCore:
    core = PlannerCore(ManualClock(), *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "127.0.0.1:9000", 4)
    return core


async def _left_open(own_redis: OwnRedis) -> tuple[ProgramStore, str]:
    """A program with one call, open in Redis, as a planner killed mid-program leaves it."""
    store = ProgramStore(own_redis.client, ManualClock(), timeout_s=0.5, hold_in_outage=True)
    core, program_id = _core(), uuid.uuid4().hex
    core.register_program(program_id, "acme")
    core.submit(program_id, "acme", "a")
    task = asyncio.create_task(store.run())
    try:
        await store.publish(core.take_events())
    finally:
        task.cancel()
    return store, program_id


async def test_a_lone_planner_reads_the_open_programs_once_redis_answers(
        own_redis: OwnRedis) -> None:
    store, program_id = await _left_open(own_redis)
    core = _core()
    stalled = own_redis.server.paused()
    stalled.__enter__()
    # Redis comes back a second into the planner's start (well within its wait)
    asyncio.get_running_loop().call_later(1.0, stalled.__exit__, None, None, None)
    await _restore(core, store, strict=False, wait_s=60.0)
    assert set(core.program(program_id, "acme").calls) == {"a"}


async def test_a_replica_taking_over_does_not_start_without_them(own_redis: OwnRedis) -> None:
    store, _ = await _left_open(own_redis)
    with own_redis.server.paused(), pytest.raises(FAILURES):
        await _restore(_core(), store, strict=True)


async def test_a_lone_planner_starts_without_them_when_redis_stays_away(
        own_redis: OwnRedis) -> None:
    store, program_id = await _left_open(own_redis)
    core = _core()
    with own_redis.server.paused():
        await _restore(core, store, strict=False, wait_s=0.5)
    with pytest.raises(PlannerError):  # started without it
        core.program(program_id, "acme")
