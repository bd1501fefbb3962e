"""A PlannerService on a real gRPC server on loopback, without Redis, for servicer tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from ostinato.clock import Clock
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from planner.core import PlannerCore
from planner.service import PlannerService


class NoStore:
    """The planner's Redis store, left out: nothing to persist in these tests."""

    def publish(self, events: object) -> None:
        return None

    def hurry(self) -> None:
        return None

    async def load_ended(self, program_id: str) -> None:
        return None


@asynccontextmanager
async def servicer_on_loopback(servicer: planner_pb2_grpc.PlannerServicer
                               ) -> AsyncIterator[planner_pb2_grpc.PlannerStub]:
    """Any Planner servicer (the real one, or a test's stand-in) served on loopback."""
    server = grpc.aio.server()
    planner_pb2_grpc.add_PlannerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield planner_pb2_grpc.PlannerStub(channel)
    finally:
        await server.stop(None)


@asynccontextmanager
async def planner_on_loopback(core: PlannerCore, clock: Clock, store: object | None = None
                             ) -> AsyncIterator[tuple[planner_pb2_grpc.PlannerStub, PlannerService]]:
    """`store`: stands in for the planner's Redis store (its `publish`); none by default."""
    service = PlannerService(core, store or NoStore(), clock)  # type: ignore[arg-type]
    async with servicer_on_loopback(service) as stub:
        yield stub, service


async def calls_running_on_w0(stub: planner_pb2_grpc.PlannerStub, *call_ids: str) -> None:
    """Worker w0 registered, program "p" of tenant "t", and each call admitted (granted)."""
    await stub.RegisterWorker(planner_pb2.WorkerRegistration(
        worker_id="w0", address="127.0.0.1:1", max_inflight=4))
    await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
        tenant="t", options=common_pb2.ProgramOptions(program_id="p")))
    for call_id in call_ids:
        await stub.Admit(planner_pb2.AdmitRequest(program_id="p", tenant="t", call_id=call_id))
