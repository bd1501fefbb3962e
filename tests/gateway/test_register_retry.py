"""A registration whose first answer was lost (the planner wrote the program, then failed over
or restarted before answering: UNAVAILABLE) is retried by the gateway with the same
registration id, and is told it opened the program: a DAG's RunProgram (`declared`) runs
instead of failing ALREADY_EXISTS, and a StartProgram starts the program's span. A real
PlannerService on loopback, behind a stand-in that loses its first answer."""

from __future__ import annotations

import grpc
import pytest

from cache.tenancy import Tenancy
from gateway.auth import ApiKeyAuthenticator
from gateway.call_items import CallFailed
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.clock import SystemClock
from ostinato.gateway_config import GatewayConfig
from ostinato.v1 import common_pb2, planner_pb2_grpc
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore, servicer_on_loopback


class _AnswerLost(planner_pb2_grpc.PlannerServicer):
    """The real planner's RegisterProgram; the first answer never reaches the caller."""

    def __init__(self, planner: PlannerService) -> None:
        self.planner = planner
        self.lost = 0

    async def RegisterProgram(self, request, context):
        answer = await self.planner.RegisterProgram(request, context)
        if not self.lost:
            self.lost += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the connection went away")
        return answer


@pytest.mark.parametrize("program_id", ["", "mine"])
async def test_a_dag_whose_registration_answer_was_lost_runs(program_id: str) -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    servicer = _AnswerLost(PlannerService(core, NoStore(), SystemClock()))  # type: ignore[arg-type]
    async with servicer_on_loopback(servicer) as planner:
        auth = ApiKeyAuthenticator(lambda: Tenancy(tenants=frozenset({"acme"})),
                                   allow_anonymous=True)
        gateway = GatewayCore(GatewayConfig(), auth, planner, CallExecutor(planner, WorkerChannels()))
        options = common_pb2.ProgramOptions(program_id=program_id)
        opened, already_open = await gateway.register_program("acme", options, declared=True)
        assert servicer.lost == 1 and not already_open  # retried, and told it opened it
        assert core.programs_open == 1
        assert opened == (program_id or opened)
        # the planner knows it for a declared DAG (ended once idle declared_idle_ttl_s)
        assert [p.declared for p in core._programs.values()] == [True]
        # a second registration of the same id is another one: still refused
        with pytest.raises(CallFailed) as again:
            await gateway.register_program("acme", common_pb2.ProgramOptions(program_id=opened),
                                           declared=True)
        assert again.value.code == grpc.StatusCode.ALREADY_EXISTS
