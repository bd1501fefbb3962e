"""A call sent again because its answer was lost (its gateway died after the planner took
it): marked as a resend, it runs again and the client gets one complete answer; unmarked,
the same call id is ALREADY_EXISTS. Real processes on loopback (the session's mesh)."""

from __future__ import annotations

import grpc
import pytest
import redis

from cache import keys
from gateway.service import RESEND_HEADER, resent
from ostinato.mesh import Mesh
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.stored_ids import stored_program_id

AUTH = (("authorization", "Bearer key-acme"),)


@pytest.mark.parametrize(("metadata", "expected"), [
    ((), False),
    ((("grpc-previous-rpc-attempts", "1"),), True),  # a gRPC retry policy's second attempt
    ((("grpc-previous-rpc-attempts", "0"),), False),
    (((RESEND_HEADER, "1"),), True),
    (((RESEND_HEADER, "TRUE"),), True),
    (((RESEND_HEADER, "0"),), False),
    ((("x-other", "1"),), False),
])
def test_what_marks_a_resend(metadata: tuple[tuple[str, str], ...], expected: bool) -> None:
    assert resent(metadata) is expected


def _call(stub: gateway_pb2_grpc.GatewayStub, program_id: str, spec: common_pb2.CallSpec,
          metadata: tuple[tuple[str, str], ...] = ()) -> common_pb2.CallResult:
    chunks = list(stub.Call(gateway_pb2.CallRequest(program_id=program_id, call=spec),
                            metadata=AUTH + metadata, timeout=60))
    return chunks[-1].result


def test_a_resent_call_runs_again_and_is_counted_once(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        program_id = stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=AUTH,
                                       timeout=30).program_id
        spec = call_spec(messages=[{"role": "user", "content": "Resend me."}], call_id="lost",
                         max_tokens=8, temperature=1.0)
        first = _call(stub, program_id, spec)  # done at the planner; say its answer was lost
        with pytest.raises(grpc.RpcError) as err:  # the same id again, unmarked
            _call(stub, program_id, spec)
        assert err.value.code() is grpc.StatusCode.ALREADY_EXISTS
        again = _call(stub, program_id, spec, ((RESEND_HEADER, "1"),))
        assert again.text and again.call_id == first.call_id == "lost"
        summary = stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program_id),
                                  metadata=AUTH, timeout=30).summary
    assert summary.calls_completed == 1 and summary.calls_failed == 0
    r = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    assert list(r.hgetall(keys.program_calls(stored_program_id(r, "acme", program_id)))) == ["lost"]
