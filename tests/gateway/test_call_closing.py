"""Call's handler left by gRPC at a chunk (its client cancelled while the chunk was sent) is
closed at the RPC's end: the gateway's call on the worker ends then, not when the handler
is collected (ostinato/rpc_closing.py). The handler driven by hand over a stand-in core."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from gateway.call_items import Delta, Granted
from gateway.core import Placement
from gateway.service import GatewayService
from ostinato.v1 import common_pb2, gateway_pb2
from tests.hand_rpc import HandDrivenRpc


class _Core:
    """The gateway core's Call path: a call that streams deltas for ever."""

    def __init__(self) -> None:
        self.ended = False

    def tenant(self, metadata: object) -> str:
        return "acme"

    def timeout(self, remaining: float | None) -> float:
        return 60.0

    async def place(self, tenant: str, call: common_pb2.CallSpec, program_id: str) -> Placement:
        return Placement(program_id="acme/p", call=call, attributed=False)

    async def run(self, tenant: str, placed: Placement, timeout_s: float
                  ) -> AsyncGenerator[object, None]:
        try:
            yield Granted("w0")
            while True:
                yield Delta("token ")
        finally:
            self.ended = True


async def test_a_call_whose_rpc_ends_at_a_chunk_ends_at_once() -> None:
    core = _Core()
    rpc = HandDrivenRpc()
    handler = GatewayService(core).Call(  # type: ignore[arg-type]
        gateway_pb2.CallRequest(call=common_pb2.CallSpec(call_id="c1", prompt="hi")), rpc)
    chunk = await anext(handler)  # being sent when the client cancels: left here by gRPC
    assert chunk.delta == "token " and not core.ended
    await rpc.end()
    assert core.ended
