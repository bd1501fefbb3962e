"""A planner RPC's failure as the gateway's client gets it."""

from __future__ import annotations

import grpc
import pytest

from gateway.call_items import RETRY_LOAD_AFTER_S, RETRY_PLANNER_AFTER_S, planner_failure

C = grpc.StatusCode


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("code", "details", "message", "retry_after_s"), [
    # refusals for load name no time: the client waits the load default, never retries at once
    (C.RESOURCE_EXHAUSTED, "the planner's queue is full (10 calls waiting)",
     "the planner's queue is full (10 calls waiting)", RETRY_LOAD_AFTER_S),
    (C.RESOURCE_EXHAUSTED, "tenant 'a' has 2 programs open, its limit: end one first",
     "tenant 'a' has 2 programs open, its limit: end one first", RETRY_LOAD_AFTER_S),
    (C.NOT_FOUND, "no program 'p'", "no program 'p'", None),
    # the programs it names by the client's ids (the mesh's are TENANT/ID)
    (C.NOT_FOUND, "no program 'a/nope'", "no program 'nope'", None),
    (C.ALREADY_EXISTS, "call 'c1' already exists in program 'a/p2'",
     "call 'c1' already exists in program 'p2'", None),
    (C.NOT_FOUND, 'no program "a/x\'y"', 'no program "x\'y"', None),
    (C.INVALID_ARGUMENT, "", "planner error", None),
    # no planner serving: the transport's text (the mesh's inner addresses) is not passed on
    (C.UNAVAILABLE, "connections to all backends failing; last error: ipv4:10.0.0.7:50052: "
     "Connection refused", "no planner is serving the mesh (a failover, a restart, or its "
     "Redis out of reach): retry later", RETRY_PLANNER_AFTER_S),
])
def test_status_message_and_when_to_retry(code: grpc.StatusCode, details: str, message: str,
                                          retry_after_s: float | None) -> None:
    failed = planner_failure(_rpc_error(code, details), "a")
    assert (failed.code, failed.message, failed.param, failed.retry_after_s) == (
        code, message, None, retry_after_s)


@pytest.mark.parametrize("final", [True, False])
def test_a_final_refusal_is_final_for_the_client(final: bool) -> None:
    """The planner's admission answer says no retry can be granted (a program past its
    deadline): the client is told not to retry (HTTP x-should-retry: false)."""
    from gateway.admissions import rpc_error

    failed = planner_failure(rpc_error(C.DEADLINE_EXCEEDED, "program 'a/p' is past its deadline",
                                       final), "a")
    assert (failed.code, failed.message, failed.final) == (
        C.DEADLINE_EXCEEDED, "program 'p' is past its deadline", final)
