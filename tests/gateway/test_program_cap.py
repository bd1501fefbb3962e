"""Programs a tenant holds open at once: its record's max_programs, else the gateway's
max_programs_per_tenant. A tenant with no limit of its own opened programs in a loop, each
kept by the planner for planner.program_idle_ttl_s and in Redis (security review
2026-12-07: 2,000 in 10 s from one tenant already refused its calls). A real
PlannerService on loopback."""

from __future__ import annotations

import asyncio

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


class _AnswerLost:
    """The planner's stub, whose RegisterProgram opens the program but never answers (its
    caller's deadline passes first)."""

    def __init__(self, stub: object) -> None:
        self._stub = stub
        self.opened = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stub, name)

    async def RegisterProgram(self, request: object, **kwargs: object) -> object:
        await self._stub.RegisterProgram(request, **kwargs)  # type: ignore[attr-defined]
        self.opened.set()
        await asyncio.Event().wait()  # never answered
        raise AssertionError("unreachable")


@pytest.mark.parametrize("named", [False, True])
async def test_a_start_cut_after_the_program_opened_leaves_none_open(named: bool) -> None:
    """Cancellation review 2026-12-08 F4: a StartProgram whose deadline passed while the
    planner opened its program left it open, an id nobody knew, holding a place under the
    tenant's max_programs until idle. The gateway ends one whose id it chose; one the client
    named is the client's (it may be open already, in use)."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())) as planner:  # type: ignore[arg-type]
        auth = ApiKeyAuthenticator(lambda: Tenancy(tenants=frozenset({"plain"})),
                                   allow_anonymous=False)
        lost = _AnswerLost(planner)
        gateway = GatewayCore(GatewayConfig(), auth, lost,  # type: ignore[arg-type]
                              CallExecutor(planner, WorkerChannels()))
        start = asyncio.ensure_future(gateway.start_program(
            "plain", common_pb2.ProgramOptions(program_id="mine" if named else "")))
        await lost.opened.wait()
        assert core.programs_open == 1
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        if named:
            assert core.programs_open == 1
            return
        async with asyncio.timeout(30):  # ended in the background (the bound: a busy machine)
            while core.programs_open:
                await asyncio.sleep(0.01)
