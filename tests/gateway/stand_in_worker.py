"""A gateway core on a real PlannerService on loopback, with one stand-in worker (a real
gRPC server whose `generate` the test writes) registered: the call path through real RPCs
without engines."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import grpc

from cache.tenancy import Tenancy, TenantLimits
from gateway.auth import ApiKeyAuthenticator
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.clock import SystemClock
from ostinato.gateway_config import GatewayConfig
from ostinato.stream_tasks import agree_batches
from ostinato.v1 import planner_pb2, worker_pb2, worker_pb2_grpc
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore, servicer_on_loopback
from workers.generate_stream import serve_generations

Generate = Callable[[worker_pb2.GenerateRequest], AsyncIterator[worker_pb2.GenerateChunk]]


class _Worker(worker_pb2_grpc.WorkerServicer):
    def __init__(self, generate: Generate) -> None:
        self.generate = generate

    async def GenerateStream(self, request_iterator, context):  # type: ignore[no-untyped-def]
        batches = await agree_batches(context)
        async for reply in serve_generations(self.generate, request_iterator, None, batches):
            yield reply


@contextlib.asynccontextmanager
async def gateway_on(generate: Generate, tenancy: Tenancy,
                     config: GatewayConfig | None = None) -> AsyncIterator[GatewayCore]:
    """A GatewayCore for `tenancy` (its records' limits), its calls run by `generate`."""
    server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServicer_to_server(_Worker(generate), server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    channels = WorkerChannels()
    limits: Callable[[str], TenantLimits] = tenancy.limits_of
    try:
        async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
                                        ) as planner:
            await planner.RegisterWorker(planner_pb2.WorkerRegistration(
                worker_id="w0", address=address, max_inflight=4))
            yield GatewayCore(config or GatewayConfig(),
                              ApiKeyAuthenticator(lambda: tenancy, allow_anonymous=False),
                              planner, CallExecutor(planner, channels, tenancy=lambda: tenancy),
                              limits=limits)
    finally:
        await channels.close()
        await server.stop(0)
