"""A call taken whole (CallRequest.whole, what the SDK's `call` and a non-streamed HTTP
request ask for): one CallChunk carrying the result and the whole text; a streamed call
still gets its text as it comes, all of it before the result."""

from __future__ import annotations

import grpc

from ostinato.mesh import Mesh
from ostinato.sdk_types import call_spec
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc


def _chunks(mesh: Mesh, whole: bool) -> list[gateway_pb2.CallChunk]:
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        spec = call_spec(messages=[{"role": "user", "content": "Tell me a long story."}],
                         max_tokens=40)
        spec.sampling.ignore_eos = True
        return list(stub.Call(gateway_pb2.CallRequest(call=spec, whole=whole), timeout=30))


def test_a_call_taken_whole_is_one_message_with_its_text(mesh: Mesh) -> None:
    [chunk] = _chunks(mesh, whole=True)
    assert chunk.HasField("result") and chunk.result.usage.completion_tokens == 40
    assert chunk.delta == chunk.result.text != ""


def test_a_streamed_call_gets_all_its_text_before_the_result(mesh: Mesh) -> None:
    # as clients from before `whole` read a stream: text chunks, then a result chunk whose
    # delta they do not look at
    chunks = _chunks(mesh, whole=False)
    assert chunks[-1].HasField("result") and not any(c.HasField("result") for c in chunks[:-1])
    assert chunks[-1].delta == ""
    assert "".join(c.delta for c in chunks[:-1]) == chunks[-1].result.text
