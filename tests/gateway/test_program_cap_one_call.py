"""One-call programs (a call naming no program) sent back to back under a limit on open
programs: one counts until the planner has its call's report, and its answer waits for that
report only under the tenant's record's max_programs (gateway/execution.py `settle`). The
gateway's default limit (gateway.max_programs_per_tenant) bounds the programs a tenant opens
itself, not these: under it, back-to-back calls were refused (review 2026-12-07). A real
PlannerService on loopback and a stand-in worker on a real gRPC server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from cache.tenancy import Tenancy, TenantLimits
from gateway.auth import ApiKeyAuthenticator
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.clock import SystemClock
from ostinato.gateway_config import GatewayConfig
from ostinato.stream_tasks import agree_batches
from ostinato.v1 import common_pb2, planner_pb2, worker_pb2, worker_pb2_grpc
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore, servicer_on_loopback
from workers.generate_stream import serve_generations


class _Worker(worker_pb2_grpc.WorkerServicer):
    async def generate(self, request: worker_pb2.GenerateRequest,
                       ) -> AsyncIterator[worker_pb2.GenerateChunk]:
        yield worker_pb2.GenerateChunk(delta="ok",
                                       result=worker_pb2.GenerateResult(finish_reason="stop"))

    async def GenerateStream(self, request_iterator, context):  # type: ignore[no-untyped-def]
        batches = await agree_batches(context)
        async for reply in serve_generations(self.generate, request_iterator, None, batches):
            yield reply


@pytest.mark.parametrize(("record", "per_tenant"), [
    (TenantLimits(max_programs=1), 0),  # the tenant's own limit
    (TenantLimits(), 1),  # the gateway's default limit
])
async def test_one_call_programs_back_to_back_are_all_served_under_a_limit(
        record: TenantLimits, per_tenant: int) -> None:
    server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServicer_to_server(_Worker(), server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    channels = WorkerChannels()
    try:
        async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
                                        ) as planner:
            await planner.RegisterWorker(planner_pb2.WorkerRegistration(
                worker_id="w0", address=address, max_inflight=4))
            tenancy = Tenancy(tenants=frozenset({"acme"}), limits={"acme": record})
            gateway = GatewayCore(
                GatewayConfig(max_programs_per_tenant=per_tenant),
                ApiKeyAuthenticator(lambda: tenancy, allow_anonymous=False), planner,
                CallExecutor(planner, channels, tenancy=lambda: tenancy),
                limits=lambda t: tenancy.limits_of(t))
            served = []
            for n in range(4):
                question = [common_pb2.Message(role="user", content=f"question {n}")]
                placed = await gateway.place("acme", common_pb2.CallSpec(
                    messages=question, sampling=common_pb2.SamplingParams(max_new_tokens=4)))
                items = [item async for item in gateway.run("acme", placed, 30.0)]
                served.append(isinstance(items[-1], common_pb2.CallResult))
            assert served == [True] * 4
    finally:
        await channels.close()
        await server.stop(0)
