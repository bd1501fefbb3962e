"""Planner high availability: two planner processes, one active by a lease in Redis. The
active one is killed (SIGKILL) mid-program, with one call running on the worker and one
waiting in its queue; the standby takes over from the state in Redis, the gateway and the
worker follow it, and every call completes exactly once."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

import ostinato
from cache import keys
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.program_ids import inner_id
from ostinato.v1 import planner_pb2, planner_pb2_grpc
from planner.ha_channel import PLANNER_SERVICE
from planner.lease import LEASE_LOST_EXIT
from tests.conftest import spawn_service, stop_service
from tests.prometheus_text import parse, value

USER = [{"role": "user", "content": "Summarize the quarterly report."}]


@pytest.fixture
def ha_mesh() -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "planner_replicas": 2,
        "planner": {"lease_ttl_s": 3.0, "lease_renew_s": 0.25},  # (a 2 s stall of a busy machine
        # would cost the active planner its lease)
        # one call at a time: the second waits in the planner's queue
        "worker": {"max_inflight": 1, "heartbeat_s": 0.5},
        "sim_engine": {"time_scale": 1.0}, "gateway": {"allow_anonymous": True, "semantic_cache": False},
    })
    m = Mesh(cfg, ephemeral_ports=True)
    m.start()
    yield m
    m.close()


def _wait_for(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _serving(address: str) -> bool:
    """The Planner service's health at one replica (the process itself stays SERVING)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            planner = stub.Check(health_pb2.HealthCheckRequest(service=PLANNER_SERVICE),
                                 timeout=5).status
            alive = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        except grpc.RpcError:
            return False
    assert alive == health_pb2.HealthCheckResponse.SERVING  # a standby is alive too
    return planner == health_pb2.HealthCheckResponse.SERVING


def _active(mesh: Mesh) -> str:
    """The one replica serving: exactly one, once the lease is taken."""
    found: list[str] = []

    def one() -> bool:
        found[:] = [n for n, a in mesh.endpoints.planners.items() if _serving(a)]
        return len(found) == 1

    _wait_for(one)
    return found[0]


def _engine_requests(url: str) -> int:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return int(value(parse(text), "sglang:num_requests_total"))


def test_active_planner_killed_mid_program_standby_takes_over_every_call_once(
        ha_mesh: Mesh) -> None:
    store = redis.Redis.from_url(ha_mesh.endpoints.redis_url, decode_responses=True)
    first = _active(ha_mesh)
    standby = next(n for n in ha_mesh.endpoints.planners if n != first)
    results: dict[str, ostinato.CallOutput] = {}
    errors: list[BaseException] = []
    with ostinato.Client(ha_mesh.endpoints.gateway) as client, client.program() as program:
        def state(call_id: str) -> str:
            raw = store.hget(keys.program_calls(inner_id("default", program.program_id)), call_id)
            return json.loads(raw)["state"] if raw else ""

        def call(name: str, **kw: object) -> threading.Thread:
            def run() -> None:
                try:
                    results[name] = program.call(call_id=name, messages=USER, **kw)  # type: ignore[arg-type]
                except BaseException as exc:
                    errors.append(exc)
            t = threading.Thread(target=run)
            t.start()
            return t

        program.call(messages=USER, max_tokens=4, call_id="c1")
        program.call(messages=USER, max_tokens=4, call_id="c2", parents=["c1"])
        running = call("c3", max_tokens=300, parents=["c2"], thread_id="main", ignore_eos=True)
        _wait_for(lambda: state("c3") == "running")
        queued = call("c4", max_tokens=4, parents=["c2"], thread_id="side")
        _wait_for(lambda: state("c4") == "queued")  # behind c3: the worker takes one call

        ha_mesh.kill(first)  # mid-program: c3 on the worker, c4 in the dead planner's queue
        assert _active(ha_mesh) == standby
        running.join(60)
        queued.join(60)
        assert not errors, errors
        program.call(messages=USER, max_tokens=4, call_id="c5", parents=["c3", "c4"])
        assert results["c3"].usage.completion_tokens > 4
        # every report delivered and saved before the summary is asked for (observed)
        _wait_for(lambda: all(state(c) == "done" for c in ("c1", "c2", "c3", "c4", "c5")))
    summary = program.summary
    assert summary is not None
    assert (summary.calls_completed, summary.calls_failed) == (5, 0), summary
    calls = {k: json.loads(v) for k, v in
             store.hgetall(keys.program_calls(inner_id("default", program.program_id))).items()}
    assert sorted(calls) == ["c1", "c2", "c3", "c4", "c5"]
    assert all(c["state"] == "done" and c["attempt"] == 1 for c in calls.values()), calls
    assert _engine_requests(ha_mesh.endpoints.engines[0]) == 5  # each call ran once
    log = (ha_mesh.workdir / "logs" / f"{standby}.log").read_text()
    assert "planner lease acquired: active" in log and "programs recovered" in log
    ha_mesh.respawn(first)  # started again as `up` does (ostinato/up_children.py Standbys)
    _wait_for(lambda: ha_mesh.ready(first))
    assert ha_mesh.child(first).poll() is None and _active(ha_mesh) == standby  # a standby


def _planner(tmp_path, redis_url: str, name: str):  # type: ignore[no-untyped-def]
    """One planner replica as its own process; a long lease, so that only a release (or a
    theft) moves it within the test."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(json.dumps({"redis": {"url": redis_url}, "planner": {
        "ha": True, "lease_ttl_s": 60.0, "lease_renew_s": 0.2, "metrics_port": -1}}))
    return spawn_service(tmp_path, "planner", "--config", str(config))


def test_standby_refuses_calls_takes_over_on_release_and_a_deposed_planner_exits(
        tmp_path, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    store = redis.Redis.from_url(redis_url)
    store.delete(keys.planner_lease())
    a, a_info = _planner(tmp_path, redis_url, "a")
    b = None
    try:
        _wait_for(lambda: _serving(a_info["address"]))
        b, b_info = _planner(tmp_path, redis_url, "b")
        assert not _serving(b_info["address"])  # alive, standing by
        with (grpc.insecure_channel(b_info["address"]) as channel,
              pytest.raises(grpc.RpcError) as refused):
            planner_pb2_grpc.PlannerStub(channel).RegisterWorker(
                planner_pb2.WorkerRegistration(worker_id="w", address="127.0.0.1:1"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        stop_service(a)  # a graceful stop releases the lease: b need not wait 60 s for it
        assert a.returncode == 0
        _wait_for(lambda: _serving(b_info["address"]))

        store.set(keys.planner_lease(), "intruder", px=60_000)  # b's lease is gone
        assert b.wait(timeout=30) == LEASE_LOST_EXIT  # renewal refused: stops, exits
    finally:
        stop_service(a)
        if b is not None:
            stop_service(b)
        store.delete(keys.planner_lease())


def test_a_program_registered_while_redis_stalls_is_known_to_the_planner_that_takes_over(
        ha_mesh: Mesh) -> None:
    """Redis stops taking writes for longer than the lease's TTL: the active planner cannot
    save a program registered meanwhile, and loses its lease. The registration is answered
    only once saved: here by the standby taking over (the gateway retries it there), so its
    later calls find it. (Answered unsaved, it was NOT_FOUND after the failover.)"""
    store = redis.Redis.from_url(ha_mesh.endpoints.redis_url)
    first = _active(ha_mesh)
    standby = next(n for n in ha_mesh.endpoints.planners if n != first)
    store.client_pause(6_000, all=False)  # writes wait 6 s: past the lease's TTL (3 s)
    with ostinato.Client(ha_mesh.endpoints.gateway) as client, client.program() as program:
        _wait_for(lambda: _serving(ha_mesh.endpoints.planners[standby]))  # (at once, saved)
        assert _active(ha_mesh) == standby
        answer = program.call(messages=USER, max_tokens=4)
    assert answer.usage.completion_tokens > 0
    summary = program.summary
    assert summary is not None and summary.calls_completed == 1, summary
    program_id = inner_id("default", program.program_id)
    assert store.hget(keys.program_meta(program_id), "state") == b"ended"
