"""Programs a tenant holds open at once: its record's max_programs, else the gateway's
max_programs_per_tenant. A tenant with no limit of its own opened programs in a loop, each
kept by the planner for planner.program_idle_ttl_s and in Redis (security review
2026-12-07: 2,000 in 10 s from one tenant already refused its calls). A real
PlannerService on loopback."""

from __future__ import annotations

import grpc
import pytest

from cache.tenancy import UNLIMITED_PROGRAMS, Tenancy, TenantLimits
from gateway.auth import ApiKeyAuthenticator
from gateway.call_items import CallFailed
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.clock import SystemClock
from ostinato.gateway_config import GatewayConfig
from ostinato.v1 import common_pb2
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore, servicer_on_loopback

RECORDS = {"capped": TenantLimits(max_programs=3),
           "trusted": TenantLimits(max_programs=UNLIMITED_PROGRAMS)}


@pytest.mark.parametrize(("tenant", "per_tenant", "opened"), [
    ("plain", 2, 2),  # no limit of its own: the gateway's
    ("capped", 2, 3),  # its record's wins, above the gateway's
    ("capped", 5, 3),  # ... and below it
    ("plain", 0, 6),  # 0: no limit (all six open)
    ("trusted", 2, 6),  # its record says no limit, whatever the gateway's
])
async def test_a_tenant_opens_programs_up_to_its_limit(tenant: str, per_tenant: int,
                                                       opened: int) -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())) as planner:  # type: ignore[arg-type]
        auth = ApiKeyAuthenticator(lambda: Tenancy(tenants=frozenset({"plain", "capped", "trusted"})),
                                   allow_anonymous=False)
        gateway = GatewayCore(GatewayConfig(max_programs_per_tenant=per_tenant), auth, planner,
                              CallExecutor(planner, WorkerChannels()),
                              limits=lambda t: RECORDS.get(t, TenantLimits()))
        refused: list[CallFailed] = []
        for _ in range(6):
            try:
                await gateway.start_program(tenant, common_pb2.ProgramOptions())
            except CallFailed as exc:
                refused.append(exc)
        assert core.programs_open == opened
        assert [e.code for e in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (6 - opened)
        assert all("programs open, its limit" in e.message for e in refused)
