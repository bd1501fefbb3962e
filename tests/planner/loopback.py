"""A PlannerService on a real gRPC server on loopback, without Redis, for servicer tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from ostinato.clock import Clock
from ostinato.v1 import planner_pb2_grpc
from planner.core import PlannerCore
from planner.service import PlannerService


class NoStore:
    """The planner's Redis store, left out: nothing to persist in these tests."""

    def publish(self, events: object) -> None:
        return None


@asynccontextmanager
async def planner_on_loopback(core: PlannerCore, clock: Clock, store: object | None = None
                             ) -> AsyncIterator[tuple[planner_pb2_grpc.PlannerStub, PlannerService]]:
    """`store`: stands in for the planner's Redis store (its `publish`); none by default."""
    service = PlannerService(core, store or NoStore(), clock)  # type: ignore[arg-type]
    server = grpc.aio.server()
    planner_pb2_grpc.add_PlannerServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield planner_pb2_grpc.PlannerStub(channel), service
    finally:
        await server.stop(None)
