"""A planner outage seen from one gateway: its calls share the count of how long the planner
has answered nothing (ostinato/retry.py `Outage`), so once the outage is PLANNER_WAIT_S long
a new call fails after one attempt instead of waiting that long on its own (a frozen or
absent planner held every request for 30 s: frozen-planner review, left open in session
52); an answer ends the outage. A stand-in planner on loopback, through the gateway's own
StartProgram path and its generated stubs."""

from __future__ import annotations

import grpc
import pytest

from cache.tenancy import Tenancy
from gateway import core as gateway_core
from gateway.auth import ApiKeyAuthenticator
from gateway.call_items import CallFailed
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.gateway_config import GatewayConfig
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from tests.planner.loopback import servicer_on_loopback


class _Planner(planner_pb2_grpc.PlannerServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.up = False

    async def RegisterProgram(self, request, context):
        self.calls += 1
        if not self.up:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return planner_pb2.RegisterProgramResponse(program_id=request.options.program_id)


async def test_a_call_during_a_long_planner_outage_fails_after_one_attempt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_core, "PLANNER_WAIT_S", 1.0)  # (room for a slow first attempt)
    servicer = _Planner()
    async with servicer_on_loopback(servicer) as planner:
        auth = ApiKeyAuthenticator(lambda: Tenancy(tenants=frozenset({"acme"})),
                                   allow_anonymous=True)
        executor = CallExecutor(planner, WorkerChannels())
        core = GatewayCore(GatewayConfig(), auth, planner, executor)
        with pytest.raises(CallFailed) as first:
            await core.start_program("acme", common_pb2.ProgramOptions())
        assert first.value.code == grpc.StatusCode.UNAVAILABLE
        attempts = servicer.calls
        assert attempts > 1  # retried for PLANNER_WAIT_S
        outage = executor.planner_outage
        assert outage.since is not None
        outage.since -= 2.0  # (as if 2 s had passed: the outage is past 1 s; no sleep)
        with pytest.raises(CallFailed):
            await core.start_program("acme", common_pb2.ProgramOptions())
        assert servicer.calls == attempts + 1  # the outage is known: one attempt
        servicer.up = True
        await core.start_program("acme", common_pb2.ProgramOptions())  # back
        assert outage.since is None
        servicer.up = False
        before = servicer.calls
        with pytest.raises(CallFailed):
            await core.start_program("acme", common_pb2.ProgramOptions())
        assert servicer.calls - before > 1  # a new outage: counted afresh
