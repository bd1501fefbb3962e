"""Faults, with real processes: a worker or its engine killed mid-call, an engine that hangs,
the gateway restarted under an open program, Redis stopped and back.

The sim engines here serve a test hook (sim_engine.debug_endpoints): POST /_debug/hang
makes one hang, so that a call is known to sit on a worker with nothing streamed yet.
Every wait is for an observable condition (a call's record in Redis, a log line, a health
status), bounded; none is a sleep.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

import ostinato
from cache import keys
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.v1 import planner_pb2, planner_pb2_grpc, worker_pb2, worker_pb2_grpc

USER = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def start_mesh(**overrides: Any) -> Mesh:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 2,
        "worker": {"max_inflight": 4, "heartbeat_s": 0.5, "health_check_s": 0.0},
        "sim_engine": {"time_scale": 0.5, "debug_endpoints": True},
        "gateway": {"allow_anonymous": True, "semantic_cache": False},
        **overrides,
    })
    mesh = Mesh(cfg, ephemeral_ports=True)
    mesh.start()
    return mesh


@pytest.fixture(scope="module")
def faults() -> Iterator[Mesh]:
    """Two workers, health checks off (a hung engine keeps its worker eligible)."""
    mesh = start_mesh()
    yield mesh
    mesh.close()


def wait_for(predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def hang(mesh: Mesh, hung: bool, engines: tuple[int, ...] = (0, 1)) -> None:
    for i in engines:
        req = urllib.request.Request(f"{mesh.endpoints.engines[i]}/_debug/hang",
                                     data=json.dumps({"hang": hung}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()


def record(mesh: Mesh, program_id: str, call_id: str) -> dict[str, Any]:
    """The call's record in Redis, as the planner persisted it ({} before its first)."""
    r = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    raw = r.hget(keys.program_calls(program_id), call_id)
    return json.loads(raw) if raw else {}


def running_on(mesh: Mesh, program_id: str, call_id: str, attempt: int = 1) -> str:
    """Waits until the call's `attempt` runs; its worker."""
    def running() -> bool:
        rec = record(mesh, program_id, call_id)
        return rec.get("state") == "running" and rec.get("attempt") == attempt
    wait_for(running)
    return str(record(mesh, program_id, call_id)["worker_id"])


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def worker_running(mesh: Mesh, worker_id: str) -> int:
    """Calls streaming from the worker's engine now (its Stats)."""
    with grpc.insecure_channel(mesh.endpoints.workers[worker_id]) as channel:
        stats = worker_pb2_grpc.WorkerStub(channel).Stats(worker_pb2.StatsRequest(), timeout=5)
    return stats.running


def restart_dead_engines(mesh: Mesh) -> None:
    for i in (0, 1):
        if mesh.child(f"engine-{i}").poll() is not None:
            mesh.restart(f"engine-{i}")


def other(worker_id: str) -> str:
    return "worker-1" if worker_id == "worker-0" else "worker-0"


def index(worker_id: str) -> int:
    return int(worker_id.rsplit("-", 1)[1])


# ---- a worker or its engine killed mid-call ----------------------------------------------


def test_worker_killed_before_streaming_the_call_reruns_elsewhere_and_answers_once(
        faults: Mesh) -> None:
    hang(faults, True)  # calls sit on their workers, nothing streamed
    killed = ""
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(messages=USER, max_tokens=12,
                                                         call_id="x"))
            killed = running_on(faults, program.program_id, "x")
            faults.kill(killed)
            assert running_on(faults, program.program_id, "x", attempt=2) == other(killed)
            hang(faults, False)
            thread.join(60)
            assert "error" not in out, out
        result = out["result"]
        assert result.text and result.worker_id == other(killed)
        assert result.usage.completion_tokens == 12 and result.finish_reason == "length"
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
        rec = record(faults, program.program_id, "x")
        assert (rec["state"], rec["attempt"], rec["excluded"]) == ("done", 2, [killed])
    finally:
        hang(faults, False)
        if killed:
            faults.restart(killed)


def _stream_then_kill_its_engine(mesh: Mesh, program: ostinato.client.Program, seen: list[str],
                                 **kw: Any) -> tuple[ostinato.client.CallStream, str]:
    """Starts a long call, kills its engine once text has streamed, and drains the stream
    into `seen` (it raises, or restarts, as the call chose); the stream and its worker."""
    stream = program.stream(messages=USER, max_tokens=400, ignore_eos=True, call_id="s", **kw)
    deltas = iter(stream)
    seen.append(next(deltas))
    worker = running_on(mesh, program.program_id, "s")
    mesh.kill(f"engine-{index(worker)}")
    seen.extend(deltas)
    return stream, worker


def test_engine_killed_after_streaming_fails_the_call_with_unavailable(faults: Mesh) -> None:
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program, \
                pytest.raises(ostinato.OstinatoError) as err:
            _stream_then_kill_its_engine(faults, program, [])
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (0, 1)
        assert record(faults, program.program_id, "s")["attempt"] == 1  # not re-run
    finally:
        restart_dead_engines(faults)


def test_engine_killed_after_streaming_restarts_a_call_that_opted_in(faults: Mesh) -> None:
    restarts: list[int] = []  # where in the deltas seen the call restarted
    seen: list[str] = []
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, \
                client.program(restart_on_failure=True) as program:
            stream, worker = _stream_then_kill_its_engine(
                faults, program, seen, on_restart=lambda: restarts.append(len(seen)))
        assert stream.restarts == 1 and len(restarts) == 1
        result = stream.result
        assert result is not None and result.worker_id == other(worker)
        assert result.usage.completion_tokens == 400 and result.text == stream.text
        assert "".join(seen[restarts[0]:]) == result.text  # what came after the restart
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
        assert record(faults, program.program_id, "s")["attempt"] == 2
    finally:
        restart_dead_engines(faults)


def generated(mesh: Mesh, engine: int) -> float:
    """Tokens the engine has generated so far (its sglang:generation_tokens counter)."""
    body = urllib.request.urlopen(f"{mesh.endpoints.engines[engine]}/metrics",
                                  timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("sglang:generation_tokens_total"))


def test_engine_killed_mid_whole_answer_reruns_it_elsewhere_and_answers_once(
        faults: Mesh) -> None:
    # program.call takes its answer whole (CallRequest.whole): nothing reaches the caller
    # before the end, so a call its engine dies under, tokens generated or not, runs again
    before = [generated(faults, i) for i in (0, 1)]
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(
                messages=USER, max_tokens=1000, ignore_eos=True, call_id="w"))
            worker = running_on(faults, program.program_id, "w")
            engine = index(worker)
            wait_for(lambda: generated(faults, engine) > before[engine])  # mid-answer
            faults.kill(f"engine-{engine}")
            thread.join(60)
            assert "error" not in out, out
        result = out["result"]
        assert result.worker_id == other(worker) and result.usage.completion_tokens == 1000
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
        assert record(faults, program.program_id, "w")["attempt"] == 2
    finally:
        restart_dead_engines(faults)


# ---- the gateway restarted: the SDK waits and retries ------------------------------------


def test_gateway_restarted_under_an_open_program_sdk_operations_go_through(
        faults: Mesh) -> None:
    address = faults.endpoints.gateway
    opened, killed = threading.Event(), threading.Event()

    async def async_side() -> tuple[ostinato.CallOutput, ostinato.ProgramSummary]:
        """An AsyncClient's program open across the restart: a call after it, its end."""
        async with ostinato.AsyncClient(address) as aclient:
            program = await aclient.program()
            await program.call(messages=USER, max_tokens=4, call_id="a1")
            opened.set()
            await asyncio.to_thread(killed.wait)
            out = await program.call(messages=USER, max_tokens=4, call_id="a2")
            return out, await program.end()

    with ostinato.Client(address) as client, ostinato.Client(address) as second:
        program = client.program()
        assert program.call(messages=USER, max_tokens=4, call_id="c1").text
        async_thread, async_out = in_thread(lambda: asyncio.run(async_side()))
        assert opened.wait(30)
        faults.kill("gateway")
        killed.set()
        # made while the gateway is down: each waits for it, none fails
        call, call_out = in_thread(lambda: program.call(messages=USER, max_tokens=4,
                                                        call_id="c2"))
        start, start_out = in_thread(second.program)
        stats, stats_out = in_thread(second.cache_stats)
        faults.restart("gateway")
        for thread in (call, start, stats, async_thread):
            thread.join(60)
        for out in (call_out, start_out, stats_out, async_out):
            assert "error" not in out, out
        assert call_out["result"].text
        summary = program.end()
        assert (summary.calls_completed, summary.calls_failed) == (2, 0)
        assert async_out["result"][0].text and async_out["result"][1].calls_completed == 2
        started = start_out["result"]
        assert started.call(messages=USER, max_tokens=4).text
        assert started.end().calls_completed == 1


def test_gateway_killed_before_a_call_streamed_the_sdk_sends_the_call_again(
        faults: Mesh) -> None:
    hang(faults, True)  # the call sits on its worker, nothing streamed
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(messages=USER, max_tokens=8,
                                                         call_id="g"))
            worker = running_on(faults, program.program_id, "g")
            wait_for(lambda: worker_running(faults, worker) == 1)  # the gateway started it
            faults.kill("gateway")
            # the planner ends the attempt of a gateway that went away (its worker reports it
            # cancelled); the SDK's retry, sent once the gateway is back, is the next attempt
            wait_for(lambda: record(faults, program.program_id, "g")["state"] == "cancelled")
            faults.restart("gateway")
            running_on(faults, program.program_id, "g", attempt=2)
            hang(faults, False)
            thread.join(60)
            assert "error" not in out, out
            assert out["result"].usage.completion_tokens == 8
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
    finally:
        hang(faults, False)


def test_end_program_repeated_after_its_answer_was_lost_gets_the_same_summary(
        faults: Mesh) -> None:
    with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
        program.call(messages=USER, max_tokens=4)
    with grpc.insecure_channel(faults.endpoints.planner) as channel:
        planner = planner_pb2_grpc.PlannerStub(channel)
        request = planner_pb2.EndProgramPlannerRequest(tenant="default",
                                                       program_id=program.program_id)
        again = planner.EndProgram(request, timeout=10)
        with pytest.raises(grpc.RpcError) as err:  # another tenant learns nothing
            planner.EndProgram(planner_pb2.EndProgramPlannerRequest(
                tenant="globex", program_id=program.program_id), timeout=10)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert program.summary is not None
    assert (again.calls_completed, again.program_id) == (1, program.program_id)
    assert again.usage.completion_tokens == program.summary.usage.completion_tokens


# ---- an engine that hangs ---------------------------------------------------------------


@pytest.fixture
def health_mesh() -> Iterator[Mesh]:
    """Two workers probing their engines every 0.2 s (a probe over 1 s fails)."""
    mesh = start_mesh(worker={"max_inflight": 4, "heartbeat_s": 0.5, "health_check_s": 0.2,
                              "health_timeout_s": 1.0})
    yield mesh
    mesh.close()


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=5)
    return resp.status == health_pb2.HealthCheckResponse.SERVING


def planner_says(mesh: Mesh, event: str, worker_id: str) -> Callable[[], bool]:
    log = mesh.workdir / "logs" / "planner.log"
    return lambda: any(event in line and worker_id in line
                       for line in log.read_text().splitlines())


def test_hung_engine_makes_its_worker_unhealthy_until_it_recovers(health_mesh: Mesh) -> None:
    mesh, address = health_mesh, health_mesh.endpoints.workers["worker-0"]
    assert serving(address)
    hang(mesh, True, engines=(0,))
    wait_for(lambda: not serving(address))  # its gRPC health: NOT_SERVING
    wait_for(planner_says(mesh, "worker unhealthy", "worker-0"))
    with ostinato.Client(mesh.endpoints.gateway) as client:

        def fan_out(n: int) -> list[str]:
            """n calls at once, of n programs; the workers they ran on."""
            programs = [client.program() for _ in range(n)]
            runs = [in_thread(lambda p=p: p.call(messages=USER, max_tokens=60,  # type: ignore[misc]
                                                 ignore_eos=True)) for p in programs]
            for thread, _ in runs:
                thread.join(60)
            for p in programs:
                p.end()
            assert all("error" not in out for _, out in runs), runs
            return [out["result"].worker_id for _, out in runs]

        assert fan_out(6) == ["worker-1"] * 6  # the hung engine's worker gets none
        hang(mesh, False, engines=(0,))
        wait_for(lambda: serving(address))
        wait_for(planner_says(mesh, "worker healthy again", "worker-0"))
        assert "worker-0" in fan_out(6)  # 4 calls at most fit on worker-1 at once


# ---- Redis stopped, then back ------------------------------------------------------------


@pytest.fixture
def cache_mesh() -> Iterator[Mesh]:
    mesh = start_mesh(workers=1, gateway={"cache_mode": "exact", "allow_anonymous": True,
                                          "semantic_cache": False})
    yield mesh
    mesh.close()


def test_redis_back_caches_and_program_records_resume(cache_mesh: Mesh) -> None:
    def ask(client: ostinato.Client, text: str) -> ostinato.CallOutput:
        with client.program() as program:
            return program.call(messages=[{"role": "user", "content": text}], max_tokens=6,
                                temperature=0.0)

    with ostinato.Client(cache_mesh.endpoints.gateway) as client:
        assert ask(client, "Name a river.").cache_hit == "miss"
        assert ask(client, "Name a river.").cache_hit == "exact"  # positive control
        cache_mesh.stop_redis()
        assert ask(client, "Name a river.").cache_hit == "miss"  # served without caches
        with client.program() as during:  # a program of the outage
            during.call(messages=USER, max_tokens=4, call_id="d1")
        assert not client.cache_stats().redis_up
        cache_mesh.start_redis()
        r = redis.Redis.from_url(cache_mesh.endpoints.redis_url, decode_responses=True)
        # the planner's records of the outage are written once Redis is back
        wait_for(lambda: r.hget(keys.program_meta(during.program_id), "state") == "ended")
        assert json.loads(r.hget(keys.program_calls(during.program_id), "d1"))["state"] == "done"
        # the answer cache serves again (its first operations may still meet a dead connection)
        tries = 0

        def cached_again() -> bool:
            nonlocal tries
            tries += 1
            text = f"Name a mountain, try {tries}."
            return ask(client, text).cache_hit == "miss" and ask(client, text).cache_hit == "exact"

        wait_for(cached_again)
        assert client.cache_stats().redis_up
