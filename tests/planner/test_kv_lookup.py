"""The planner process routes on the KV-reference index in a real Redis (its copy of each
worker's key, loaded when the worker first registers and kept current from the workers'
change streams; cache/kv_mirror.py).

A real `ostinato planner` on loopback, driven through its generated stubs; blocks are
published as a worker would. Paired: tenant A's prompt goes to the worker holding it
(positive control), tenant B's identical prompt does not (isolation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
import redis

from cache.block_hash import block_hex, prompt_block_hashes
from cache.keys import kv_blocks
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from tests.conftest import spawn_service, stop_service
from workers.sim.tokenizer import tokenize

PROMPT = "<|im_start|>system\nYou triage support tickets for a bank.<|im_end|>\n" * 6


@pytest.fixture(scope="module")
def planner(redis_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[planner_pb2_grpc.PlannerStub]:
    proc, info = spawn_service(tmp_path_factory.mktemp("planner"), "planner", "--redis-url",
                               redis_url, "--policy", "fcfs+cache_aware")
    with grpc.insecure_channel(str(info["address"])) as channel:
        yield planner_pb2_grpc.PlannerStub(channel)
    stop_service(proc)


def admit(stub: planner_pb2_grpc.PlannerStub, tenant: str, hashes: list[int]) -> planner_pb2.Grant:
    program = stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
        tenant=tenant, options=common_pb2.ProgramOptions()), timeout=5).program_id
    grant = stub.Admit(planner_pb2.AdmitRequest(
        tenant=tenant, program_id=program, call_id="c", prompt_tokens=100, max_new_tokens=8,
        prefix_hashes=hashes), timeout=5)
    stub.ReportCompletion(planner_pb2.CompletionReport(
        program_id=program, call_id="c", worker_id=grant.worker_id,
        status=planner_pb2.COMPLETION_STATUS_OK), timeout=5)
    return grant


def test_routes_to_the_worker_whose_engine_holds_the_prompt_for_its_tenant_only(
        planner: planner_pb2_grpc.PlannerStub, redis_url: str) -> None:
    a = prompt_block_hashes(tokenize, PROMPT, "tenant:acme")
    client = redis.Redis.from_url(redis_url)
    try:  # what worker kv-w1 publishes once its engine has run tenant acme's prompt
        client.zadd(kv_blocks("kv-w1"), {block_hex(h): time.time() for h in a})
        # answered once the planner's copy of each worker's index is loaded
        for w in ("kv-w0", "kv-w1"):
            planner.RegisterWorker(planner_pb2.WorkerRegistration(
                worker_id=w, address=f"127.0.0.1:1999{w[-1]}", max_inflight=4), timeout=5)
        # Idle workers tie on load, so without the index kv-w0 (lowest id) would win.
        assert admit(planner, "acme", a).worker_id == "kv-w1"  # positive control
        b = prompt_block_hashes(tokenize, PROMPT, "tenant:globex")
        assert admit(planner, "globex", b).worker_id == "kv-w0"
    finally:
        client.delete(kv_blocks("kv-w1"))
        client.close()
