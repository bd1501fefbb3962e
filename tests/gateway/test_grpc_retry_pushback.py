"""A failure the gateway has already retried for as long as a client's automatic retries
would (no planner answered: ostinato/retry.py PLANNER_WAIT_S) is not retried by the SDK's
gRPC retry policy: the gateway's trailer `grpc-retry-pushback-ms: -1` stops it (new-user
review, session 52: a Call waited 3 x 30 s, StartProgram ran into its 60 s deadline).
A real server on loopback, the SDK's own channel options."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.call_items import CallFailed
from gateway.service import _abort
from ostinato.sdk_types import CHANNEL_OPTIONS
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc


class _Refusing(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, error: CallFailed) -> None:
        self.error, self.attempts = error, 0

    async def StartProgram(self, request, context):
        self.attempts += 1
        await _abort(context, self.error)


@pytest.mark.parametrize(("retried", "attempts"), [(True, 1), (False, 5)])
def test_the_sdk_retries_only_what_the_gateway_has_not(retried: bool, attempts: int) -> None:
    error = CallFailed(grpc.StatusCode.UNAVAILABLE, "no planner is serving the mesh",
                       retry_after_s=5.0, retried=retried)

    async def run() -> tuple[int, grpc.StatusCode | None, tuple]:
        servicer = _Refusing(error)
        server = grpc.aio.server()
        gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                                 options=CHANNEL_OPTIONS) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                try:
                    await stub.StartProgram(gateway_pb2.StartProgramRequest(), timeout=30)
                except grpc.aio.AioRpcError as exc:
                    return servicer.attempts, exc.code(), tuple(exc.trailing_metadata() or ())
                return servicer.attempts, None, ()
        finally:
            await server.stop(None)

    seen, code, trailers = asyncio.run(run())
    assert code == grpc.StatusCode.UNAVAILABLE
    assert seen == attempts  # the policy's 5 attempts for StartProgram, or the first only
    assert ("retry-after-ms", "5000") in trailers
