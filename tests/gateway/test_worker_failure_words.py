"""A call whose worker failed tells its client so without the worker's words: they name the
mesh's inner addresses (the engine's URL), and go to the gateway's log. Whatever the status
the worker ended the call with: an engine that timed out (DEADLINE_EXCEEDED, "worker w0:
engine http://... timed out") names its URL as one that broke does (review 2026-12-07). A
real PlannerService on loopback and a stand-in worker on a real gRPC server."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
from ostinato.stream_tasks import agree_batches
from ostinato.v1 import common_pb2, planner_pb2, worker_pb2, worker_pb2_grpc
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore, servicer_on_loopback
from workers.generate_stream import GenerateRefused, serve_generations

ENGINE = "http://10.9.8.7:30000"


class _Worker(worker_pb2_grpc.WorkerServicer):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details

    async def generate(self, request: worker_pb2.GenerateRequest,
                       ) -> AsyncIterator[worker_pb2.GenerateChunk]:
        raise GenerateRefused(self.code, self.details)
        yield  # (a generator)

    async def GenerateStream(self, request_iterator, context):  # type: ignore[no-untyped-def]
        batches = await agree_batches(context)
        async for reply in serve_generations(self.generate, request_iterator, None, batches):
            yield reply


@pytest.mark.parametrize(("code", "details", "told"), [
    (grpc.StatusCode.UNAVAILABLE, f"worker w0: engine {ENGINE} answered 503",
     "failed on each of its 3 attempts"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, f"worker w0: engine {ENGINE} timed out",
     "ran past its deadline"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, f"worker w0: engine {ENGINE} is full",
     "worker ended it (RESOURCE_EXHAUSTED)"),
])
async def test_a_failed_workers_words_do_not_reach_the_client(
        code: grpc.StatusCode, details: str, told: str) -> None:
    server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServicer_to_server(_Worker(code, details), server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    channels = WorkerChannels()
    try:
        async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
                                        ) as planner:
            await planner.RegisterWorker(planner_pb2.WorkerRegistration(
                worker_id="w0", address=address, max_inflight=4))
            tenancy = Tenancy(tenants=frozenset({"acme"}))
            gateway = GatewayCore(GatewayConfig(),
                                  ApiKeyAuthenticator(lambda: tenancy, allow_anonymous=False),
                                  planner, CallExecutor(planner, channels))
            question = [common_pb2.Message(role="user", content="hello")]
            placed = await gateway.place("acme", common_pb2.CallSpec(
                messages=question, sampling=common_pb2.SamplingParams(max_new_tokens=4)))
            with pytest.raises(CallFailed) as failed:
                async for _ in gateway.run("acme", placed, 30.0):
                    pass
            assert failed.value.code == (grpc.StatusCode.UNAVAILABLE if code ==
                                         grpc.StatusCode.UNAVAILABLE else code)
            assert told in failed.value.message
            assert ENGINE not in failed.value.message and "10.9.8.7" not in failed.value.message
    finally:
        await channels.close()
        await server.stop(0)
