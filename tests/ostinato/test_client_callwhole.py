"""The SDK's program.call over CallWhole (the answer in one unary message), against fake
gateways: one that has it, and one from before it (UNIMPLEMENTED: a Call stream instead)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc

import ostinato
from ostinato.v1 import gateway_pb2_grpc
from tests.ostinato.test_client_fake_gateway import WAIT_S, FakeGateway


@contextmanager
def _served(fake: FakeGateway) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_a_call_run_to_its_end_is_one_unary_callwhole_and_a_stream_is_a_call() -> None:
    fake = FakeGateway()
    with _served(fake) as address, ostinato.Client(address, timeout_s=WAIT_S) as client, \
            client.program() as program:
        out = program.call(prompt="x", call_id="whole", logprobs=True, top_logprobs=1)
        stream = program.stream(prompt="x", call_id="streamed", whole=True)
        assert list(stream) == ["hi"]
    assert fake.whole == ["whole"]  # the streamed one went as Call
    assert [r.call.call_id for r in fake.calls] == ["whole", "streamed"]
    assert (out.text, out.finish_reason, out.call_id) == ("hi", "stop", "whole")
    assert [t.token for t in out.logprobs] == ["hi"]
    assert list(fake.calls[-1].call.parent_call_ids) == ["whole"]  # its thread recorded


class _OlderGateway(FakeGateway):
    """A gateway from before CallWhole: UNIMPLEMENTED, as gRPC answers a method it lacks."""

    def CallWhole(self, request, context):
        self.whole.append(request.call.call_id)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


def test_a_gateway_older_than_callwhole_is_called_with_a_stream() -> None:
    fake = _OlderGateway()
    with _served(fake) as address, ostinato.Client(address, timeout_s=WAIT_S) as client, \
            client.program() as program:
        first = program.call(prompt="x", call_id="a")
        second = program.call(prompt="x", call_id="b")
    assert (first.text, second.text) == ("hi", "hi")
    assert fake.whole == ["a"]  # asked once: the client remembers the gateway lacks it
    assert [r.call.call_id for r in fake.calls] == ["a", "b"]
    assert all(r.whole for r in fake.calls)  # the answer whole, as CallWhole gives it
    assert list(fake.calls[1].call.parent_call_ids) == ["a"]  # threads recorded as before
