"""The planner's fair-share weights from the tenancy data in a real Redis: a tenant whose
record names a weight has it, one whose record names none (a configured key's, seeded by a
gateway) has planner.tenant_weights' (live review 2026-12-07 F2; diff review: the service's
wiring was untested)."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from cache.tenancy import TenantLimits
from cache.tenant_directory import TenantDirectory
from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.main import reload_tenant_weights


async def test_records_name_weights_and_the_rest_come_from_the_configuration(
        redis_url: str) -> None:
    seeded, weighted, plain = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(3))
    client = aioredis.from_url(redis_url)
    try:
        directory = TenantDirectory(client)
        await directory.seed({f"key-{seeded}": seeded})
        await directory.create_tenant(weighted, TenantLimits(weight=0.5))
        await directory.create_tenant(plain, TenantLimits(rpm=5))
        core = PlannerCore(ManualClock(), *parse_policy("plas+round_robin"))
        await reload_tenant_weights(core, directory, {seeded: 3.0, weighted: 4.0})
    finally:
        await client.aclose()
    fair = core._queue.fair_share
    assert [fair.weight(t) for t in (seeded, weighted, plain)] == [3.0, 0.5, 1.0]
