"""Learned estimates survive a planner restart: saved to a real Redis, read by a fresh core."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
import redis
import redis.asyncio as aioredis

from cache.keys import planner_learned
from ostinato.clock import ManualClock
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.learned_store import LearnedStore
from tests.conftest import OwnRedis, spawn_service, stop_service
from tests.ports import closed_port


def fresh_core() -> PlannerCore:
    return PlannerCore(ManualClock(), *parse_policy("srpt+affinity"))


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[LearnedStore]:
    client = aioredis.from_url(redis_url)
    await client.delete(planner_learned())
    yield LearnedStore(client)
    await client.delete(planner_learned())
    await client.aclose()


async def test_a_fresh_core_gets_what_the_old_one_learned(store: LearnedStore) -> None:
    old = fresh_core()
    for i in range(40):
        old.program_sizes.observe("react", 100.0 + i)
        old.estimator.observe("react", 30 + i % 5)
    assert await store.save(old)
    new, cold = fresh_core(), fresh_core()
    assert await store.load(new) == 2  # "react" and the pooled history
    assert new.program_sizes.remaining("react", 0.0) == old.program_sizes.remaining("react", 0.0)
    assert new.estimator.estimate("react", 0) == old.estimator.estimate("react", 0) == 34
    assert cold.program_sizes.remaining("react", 0.0) is None  # what restoring saves us from
    assert cold.estimator.estimate("react", 0) == 512


@pytest.mark.parametrize("raw", [
    "not json", json.dumps({"version": 99}), json.dumps([1, 2]),
    json.dumps({"version": 1, "outputs": {"c": ["x"]}}),
    json.dumps({"version": 1, "program_sizes": {"c": 3}}),
])
async def test_an_unreadable_document_means_starting_cold(store: LearnedStore, redis_url: str,
                                                          raw: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.set(planner_learned(), raw)
    finally:
        await client.aclose()
    core = fresh_core()
    assert await store.load(core) == 0
    assert core.estimator.history() == {} and core.program_sizes.history() == {}


async def test_redis_down_means_starting_cold_without_waiting_long() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    try:
        store = LearnedStore(client, timeout_s=0.1)
        assert await store.load(fresh_core()) == 0
        assert await store.save(fresh_core()) is False
    finally:
        await client.aclose()


async def test_a_history_redis_could_not_give_at_the_start_is_read_before_anything_is_saved(
        own_redis: OwnRedis) -> None:
    """A helper's review: a planner whose first read failed (Redis slow at its start)
    started cold, then saved its cold history every 30 s over what the planners before it
    had learned, lost for every planner after. Now nothing is saved until the document is
    read; read late, it is merged with what this planner learned meanwhile."""
    client = own_redis.client
    old = fresh_core()
    for i in range(40):
        old.estimator.observe("react", 30 + i % 5)
    assert await LearnedStore(client).save(old)
    stored = json.loads(await client.get(planner_learned()))
    store, new = LearnedStore(client, timeout_s=0.5), fresh_core()
    with own_redis.server.paused():
        assert await store.load(new) == 0 and not store.loaded
    new.estimator.observe("react", 900)  # learned while cold
    new.estimator.observe("triage", 7)
    with own_redis.server.paused():
        assert await store.save(new) is False  # not read yet: not written either
    assert json.loads(await client.get(planner_learned())) == stored
    async with asyncio.timeout(30.0):  # read (and merged) first, then written (retried:
        while not await store.save(new):  # the resumed server first runs what queued, 0.5 s
            await asyncio.sleep(0.05)  # a read on a busy machine)
    assert store.loaded
    history = new.estimator.history()
    assert history["react"] == [*stored["outputs"]["react"], 900][-len(history["react"]):]
    assert history["triage"] == [7]
    saved = json.loads(await client.get(planner_learned()))["outputs"]
    assert saved["react"][-1] == 900 and saved["triage"] == [7]


def test_the_planner_process_saves_what_it_learned_when_it_stops(redis_url: str,
                                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    sync = redis.Redis.from_url(redis_url)
    sync.delete(planner_learned())
    proc, info = spawn_service(tmp_path, "planner", "--redis-url", redis_url)
    try:
        with grpc.insecure_channel(str(info["address"])) as channel:
            stub = planner_pb2_grpc.PlannerStub(channel)
            stub.RegisterWorker(planner_pb2.WorkerRegistration(
                worker_id="w", address="127.0.0.1:1", max_inflight=4), timeout=5)
            for i in range(3):
                pid = stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
                    tenant="t", options=common_pb2.ProgramOptions(program_class="triage")),
                    timeout=5).program_id
                stub.Admit(planner_pb2.AdmitRequest(tenant="t", program_id=pid, call_id="c",
                                                    prompt_tokens=50, max_new_tokens=64), timeout=5)
                stub.ReportCompletion(planner_pb2.CompletionReport(
                    program_id=pid, call_id="c", worker_id="w", service_s=0.1,
                    status=planner_pb2.COMPLETION_STATUS_OK,
                    usage=common_pb2.Usage(prompt_tokens=50, completion_tokens=20 + i)), timeout=5)
                stub.EndProgram(planner_pb2.EndProgramPlannerRequest(tenant="t", program_id=pid),
                                timeout=5)
    finally:
        stop_service(proc)
    doc = json.loads(sync.get(planner_learned()))
    sync.close()
    assert sorted(doc["outputs"]["triage"]) == [20, 21, 22]
    assert len(doc["program_sizes"]["triage"]) == 3
