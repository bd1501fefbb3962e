"""One-call programs (a call naming no program) sent back to back under a limit on open
programs: one counts until the planner has its call's report, and its answer waits for that
report only under the tenant's record's max_programs (gateway/execution.py `settle`). The
gateway's default limit (gateway.max_programs_per_tenant) bounds the programs a tenant opens
itself, not these: under it, back-to-back calls were refused (review 2026-12-07)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cache.tenancy import UNLIMITED_PROGRAMS, Tenancy, TenantLimits
from ostinato.gateway_config import GatewayConfig
from ostinato.v1 import common_pb2, worker_pb2
from tests.gateway.stand_in_worker import gateway_on


async def _answers(request: worker_pb2.GenerateRequest,
                   ) -> AsyncIterator[worker_pb2.GenerateChunk]:
    yield worker_pb2.GenerateChunk(delta="ok",
                                   result=worker_pb2.GenerateResult(finish_reason="stop"))


@pytest.mark.parametrize(("record", "per_tenant"), [
    (TenantLimits(max_programs=1), 0),  # the tenant's own limit
    (TenantLimits(), 1),  # the gateway's default limit
    (TenantLimits(max_programs=UNLIMITED_PROGRAMS), 1),  # its record: none
])
async def test_one_call_programs_back_to_back_are_all_served_under_a_limit(
        record: TenantLimits, per_tenant: int) -> None:
    tenancy = Tenancy(tenants=frozenset({"acme"}), limits={"acme": record})
    async with gateway_on(_answers, tenancy,
                          GatewayConfig(max_programs_per_tenant=per_tenant)) as gateway:
        served = []
        for n in range(4):
            question = [common_pb2.Message(role="user", content=f"question {n}")]
            placed = await gateway.place("acme", common_pb2.CallSpec(
                messages=question, sampling=common_pb2.SamplingParams(max_new_tokens=4)))
            items = [item async for item in gateway.run("acme", placed, 30.0)]
            served.append(isinstance(items[-1], common_pb2.CallResult))
        assert served == [True] * 4
