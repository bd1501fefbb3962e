"""Lost grants, with real processes: a gateway that dies holding a grant (here a raw planner
client that never calls the worker), and a worker restarted under a running call. The
worker's heartbeat lists the calls it knows; the planner ends the grants it made there that
the worker does not know, older than planner.unstarted_grant_s, freeing their slots.

Every wait is for an observable condition (a grant that comes, a record in Redis, the
worker's Stats), bounded; none is a sleep.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
import redis

from cache import keys
from ostinato.mesh import Mesh
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.integration.test_faults import hang, in_thread, start_mesh, wait_for, worker_running
from tests.prometheus_text import parse, value

WORKER = "worker-0"


@pytest.fixture(scope="module")
def lossy() -> Iterator[Mesh]:
    """One worker with two slots; grants not started within 6 s are lost (heartbeat 0.2 s):
    time enough for the test to start the call it keeps on a busy machine."""
    mesh = start_mesh(workers=1,
                      worker={"max_inflight": 2, "heartbeat_s": 0.2, "health_check_s": 0.0},
                      planner={"unstarted_grant_s": 6.0})
    yield mesh
    mesh.close()


@pytest.fixture()
def planner(lossy: Mesh) -> Iterator[planner_pb2_grpc.PlannerStub]:
    """The planner, spoken to as a gateway would."""
    with grpc.insecure_channel(lossy.endpoints.planner) as channel:
        yield planner_pb2_grpc.PlannerStub(channel)


def _program(planner: planner_pb2_grpc.PlannerStub) -> str:
    return planner.RegisterProgram(planner_pb2.RegisterProgramRequest(
        tenant="acme", options=common_pb2.ProgramOptions()), timeout=10).program_id


def _admit(planner: planner_pb2_grpc.PlannerStub, program_id: str, call_id: str,
           timeout_s: float = 10.0) -> planner_pb2.Grant:
    return planner.Admit(planner_pb2.AdmitRequest(
        tenant="acme", program_id=program_id, call_id=call_id, prompt_tokens=8,
        max_new_tokens=8), timeout=timeout_s)


def _start_on_worker(mesh: Mesh, program_id: str, grant: planner_pb2.Grant) -> None:
    """Starts the granted call on its worker (in a thread, its engine hung: it stays there),
    as a gateway would; returns once the worker runs it."""
    before = worker_running(mesh, grant.worker_id)

    def generate() -> None:
        with grpc.insecure_channel(grant.worker_address) as channel:
            for _ in worker_pb2_grpc.WorkerStub(channel).Generate(worker_pb2.GenerateRequest(
                    program_id=program_id, call_id=grant.call_id, attempt=grant.attempt,
                    tenant="acme", prompt="Tell me about lighthouses.",
                    sampling=common_pb2.SamplingParams(max_new_tokens=8)), timeout=60):
                pass

    in_thread(generate)
    wait_for(lambda: worker_running(mesh, grant.worker_id) > before)


def _state(mesh: Mesh, program_id: str, call_id: str) -> str:
    """The call's state in Redis; `program_id` is the planner's own (no gateway named it)."""
    r = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    raw = r.hget(keys.program_calls(program_id), call_id)
    return str(json.loads(raw).get("state", "")) if raw else ""


def _unstarted_total(mesh: Mesh) -> float:
    url = f"http://{mesh.endpoints.metrics['planner']}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return value(parse(text), "ostinato_planner_unstarted_grants_total", worker=WORKER)


def test_a_grant_never_started_is_cancelled_and_frees_its_slot(
        lossy: Mesh, planner: planner_pb2_grpc.PlannerStub) -> None:
    hang(lossy, True, engines=(0,))  # a started call stays on the worker
    try:
        program_id = _program(planner)
        kept = _admit(planner, program_id, "kept")
        _start_on_worker(lossy, program_id, kept)
        lost = _admit(planner, program_id, "lost")  # its "gateway" dies: never started
        assert (kept.worker_id, lost.worker_id) == (WORKER, WORKER)  # both slots taken
        # a third call gets a slot once the planner has given up on `lost`
        after = _admit(planner, program_id, "after", timeout_s=30)
        assert after.worker_id == WORKER
        wait_for(lambda: _state(lossy, program_id, "lost") == "cancelled")
        # `kept`, granted earlier and running on the worker all along, is untouched
        assert _state(lossy, program_id, "kept") == "running"
        assert _unstarted_total(lossy) >= 1  # `after`, never started either, may follow
    finally:
        hang(lossy, False, engines=(0,))


def test_a_worker_restarted_under_a_running_call_has_it_cancelled(
        lossy: Mesh, planner: planner_pb2_grpc.PlannerStub) -> None:
    wait_for(lambda: worker_running(lossy, WORKER) == 0)  # another test's calls ended
    hang(lossy, True, engines=(0,))
    try:
        program_id = _program(planner)
        grant = _admit(planner, program_id, "forgotten")
        _start_on_worker(lossy, program_id, grant)
        lossy.kill(WORKER)  # its "gateway" sees the stream break, and dies too
        lossy.restart(WORKER)  # knows nothing of the call
        wait_for(lambda: _state(lossy, program_id, "forgotten") == "cancelled")
    finally:
        hang(lossy, False, engines=(0,))
    # both slots free again: two calls are granted at once
    grants = [_admit(planner, program_id, f"again-{i}", timeout_s=30) for i in range(2)]
    assert {g.worker_id for g in grants} == {WORKER}
