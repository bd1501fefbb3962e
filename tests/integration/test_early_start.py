"""Early start with real processes (gateway/early_guess.py): a call the gateway sends to a
worker while its admission is on its way to the planner runs once, counted once, whether
the planner grants that worker (the early run is the call's attempt) or another (the early
run is cancelled; the call runs where granted, as attempt 2).

Every wait is for an observable condition, bounded; none is a sleep.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from ostinato.mesh import Mesh
from ostinato.sdk_types import call_spec
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc
from tests.integration.fault_mesh import (
    in_thread,
    other,
    record,
    running_on,
    start_mesh,
    wait_for,
    worker_running,
)
from tests.prometheus_text import parse, value

USER = [{"role": "user", "content": "Name a lighthouse."}]


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    """Two workers of two slots each (the planner's budget): a worker busy with two calls is
    full, and a call guessed onto it is granted the other."""
    mesh = start_mesh(workers=2, worker={"max_inflight": 2, "heartbeat_s": 0.5,
                                         "health_check_s": 0.0},
                      # (one gateway: its last grant stays news however slow the machine)
                      gateway={"allow_anonymous": True, "semantic_cache": False,
                               "drain_s": 1.0, "early_start_fresh_s": 60.0})
    yield mesh
    mesh.close()


@pytest.fixture()
def stub(mesh: Mesh) -> Iterator[gateway_pb2_grpc.GatewayStub]:
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        yield gateway_pb2_grpc.GatewayStub(channel)


def _early(mesh: Mesh) -> dict[str, float]:
    """The gateway's early starts so far, by outcome."""
    body = urllib.request.urlopen(f"http://{mesh.endpoints.metrics['gateway']}/metrics",
                                  timeout=5).read().decode()
    samples = parse(body)
    return {o: value(samples, "ostinato_early_starts_total", outcome=o)
            for o in ("confirmed", "missed")}


def _whole(stub: gateway_pb2_grpc.GatewayStub, program_id: str, call_id: str,
           max_tokens: int = 4) -> gateway_pb2.CallChunk:
    spec = call_spec(messages=USER, call_id=call_id, thread_id=call_id, parents=[],
                     max_tokens=max_tokens)
    return stub.CallWhole(gateway_pb2.CallRequest(program_id=program_id, call=spec), timeout=60)


def test_calls_started_early_on_their_programs_worker_run_once(
        mesh: Mesh, stub: gateway_pb2_grpc.GatewayStub) -> None:
    before = _early(mesh)
    pid = stub.StartProgram(gateway_pb2.StartProgramRequest(), timeout=10).program_id
    answers = [_whole(stub, pid, f"c{i}") for i in range(8)]
    after = _early(mesh)
    # the first call placed the program; each later one started early on its worker, and ran
    # there as its first attempt; or, its worker still full at the planner (the last calls'
    # reports on their way), ran on the other as its second
    confirmed = after["confirmed"] - before["confirmed"]
    missed = after["missed"] - before["missed"]
    assert confirmed >= 1 and confirmed + missed <= 7, (before, after)
    assert all(a.result.usage.completion_tokens == 4 for a in answers)
    summary = stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=pid), timeout=10).summary
    assert (summary.calls_completed, summary.calls_failed, summary.calls_cancelled) == (8, 0, 0)
    assert summary.usage.completion_tokens == 8 * 4  # the early runs counted once each
    attempts = [record(mesh, pid, f"c{i}")["attempt"] for i in range(1, 8)]
    assert sorted(attempts) == [1] * (7 - int(missed)) + [2] * int(missed)


def test_a_call_started_early_on_a_full_worker_runs_where_granted_once(
        mesh: Mesh, stub: gateway_pb2_grpc.GatewayStub) -> None:
    pid = stub.StartProgram(gateway_pb2.StartProgramRequest(), timeout=10).program_id
    _whole(stub, pid, "first")  # places the program: its worker is the gateway's guess
    home = str(record(mesh, pid, "first")["worker_id"])
    # (its slot freed at the planner: a report still on its way would leave the worker one
    # slot for the long calls, and the second would go to the other worker)
    wait_for(lambda: record(mesh, pid, "first").get("state") == "done")
    # two long calls of the program fill its worker's two slots...
    longs, threads = [], []
    for name in ("long", "long2"):
        spec = call_spec(messages=USER, call_id=name, thread_id=name, parents=[],
                         max_tokens=4000)
        spec.sampling.ignore_eos = True
        longs.append(stub.Call(gateway_pb2.CallRequest(program_id=pid, call=spec), timeout=120))
        threads.append(in_thread(lambda call=longs[-1]: list(call))[0])
    try:
        assert running_on(mesh, pid, "long") == home and running_on(mesh, pid, "long2") == home
        wait_for(lambda: worker_running(mesh, home) == 2)
        # (a grant just now, of a one-call program on the other worker, which keeps a free
        # slot: the gateway's last grant is fresh however long the waits above took)
        _whole(stub, "", "fresh")
        before = _early(mesh)
        # ...so the next call, guessed onto it, is granted the other worker: attempt 2
        answer = _whole(stub, pid, "next")
        after = _early(mesh)
        assert after["missed"] - before["missed"] == 1, (before, after)
        assert answer.result.worker_id == other(home)
        assert answer.result.usage.completion_tokens == 4
        wait_for(lambda: record(mesh, pid, "next").get("state") == "done")  # (reported)
        rec = record(mesh, pid, "next")
        assert (rec["attempt"], rec["worker_id"]) == (2, other(home))
        # the early run on the full worker was cut: only the long calls run there
        wait_for(lambda: worker_running(mesh, home) == 2 and worker_running(mesh, other(home)) == 0)
    finally:
        for call in longs:
            call.cancel()
        for thread in threads:
            thread.join(timeout=30)
    summary = stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=pid), timeout=10).summary
    # first and next once each; the long calls cancelled; nothing failed
    assert (summary.calls_completed, summary.calls_failed, summary.calls_cancelled) == (2, 0, 2)
