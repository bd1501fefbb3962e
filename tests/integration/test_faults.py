"""Faults, with real processes: the gateway restarted under an open program, an engine that
hangs, Redis stopped and back (a worker or its engine killed mid-call:
test_worker_faults.py). Helpers and the mesh: tests/integration/fault_mesh.py (the
`faults` fixture: conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator

import grpc
import openai
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

import ostinato
from cache import keys
from ostinato.mesh import Mesh
from ostinato.program_ids import inner_id
from ostinato.v1 import planner_pb2, planner_pb2_grpc
from tests.integration.fault_mesh import (
    USER,
    hang,
    in_thread,
    index,
    other,
    record,
    running_on,
    start_mesh,
    wait_for,
    worker_running,
)

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
        stored = inner_id("default", program.program_id)  # the planner's id of it
        request = planner_pb2.EndProgramPlannerRequest(tenant="default", program_id=stored)
        again = planner.EndProgram(request, timeout=10)
        with pytest.raises(grpc.RpcError) as err:  # another tenant learns nothing
            planner.EndProgram(planner_pb2.EndProgramPlannerRequest(
                tenant="globex", program_id=stored), timeout=10)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert program.summary is not None
    assert (again.calls_completed, again.program_id) == (1, stored)
    assert again.usage.completion_tokens == program.summary.usage.completion_tokens


# ---- the gateway stopped (SIGTERM) under HTTP requests ----------------------------------


def test_a_stopping_gateway_ends_open_http_requests_with_503_and_exits_on_its_own(
        faults: Mesh) -> None:
    """Requests still running when the grace period ends are cut with UNAVAILABLE: a
    stream already under way gets an error event, a request not yet answered a 503; the
    gateway then exits by itself (before `ostinato up` would have to kill it)."""
    base = f"http://{faults.endpoints.gateway_http}/v1"
    with openai.OpenAI(base_url=base, api_key="none", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="", messages=USER, max_tokens=4000, stream=True,
            extra_body={"ignore_eos": True})
        first = next(c for c in stream if c.choices and c.choices[0].delta.content)
        assert first.choices[0].delta.content
        hang(faults, True)  # the stream stays open: no engine step ends
        try:
            waiting, waiting_out = in_thread(lambda: client.chat.completions.create(
                model="", messages=USER, max_tokens=8))
            wait_for(lambda: sum(worker_running(faults, w) for w in faults.endpoints.workers)
                     == 2)  # both calls sit on their workers
            gateway = faults.child("gateway")
            gateway.terminate()
            with pytest.raises(openai.APIError, match="the gateway is stopping"):
                for _ in stream:
                    pass
            waiting.join(60)
            error = waiting_out.get("error")
            assert isinstance(error, openai.APIStatusError), waiting_out
            assert error.status_code == 503 and "the gateway is stopping" in error.message
            assert error.response.headers["Retry-After"] == "1"
            assert gateway.wait(timeout=60) == 0  # by itself: Mesh.stop kills only after 10 s
            log = (faults.workdir / "logs" / "gateway.log").read_text()
            assert '"grace_s": 1.0' in log  # gateway.drain_s
        finally:
            hang(faults, False)
    faults.restart("gateway")


# ---- an engine that hangs ---------------------------------------------------------------


WORKER_SERVICE = "ostinato.v1.Worker"  # what a readiness probe asks (deploy/k8s/base/workers.yaml)


@pytest.fixture(scope="module")
def health_mesh() -> Iterator[Mesh]:
    """Two workers probing their engines every 0.2 s (a probe over 3 s fails: a busy machine
    can hold a healthy engine's answer past 1 s)."""
    mesh = start_mesh(worker={"max_inflight": 4, "heartbeat_s": 0.5, "health_check_s": 0.2,
                              "health_timeout_s": 3.0})
    yield mesh
    mesh.close()


def serving(address: str, service: str = WORKER_SERVICE) -> bool:
    with grpc.insecure_channel(address) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    return resp.status == health_pb2.HealthCheckResponse.SERVING


def planner_says(mesh: Mesh, event: str, worker_id: str) -> Callable[[], bool]:
    log = mesh.workdir / "logs" / "planner.log"
    return lambda: any(event in line and worker_id in line
                       for line in log.read_text().splitlines())


def test_hung_engine_makes_its_worker_unhealthy_until_it_recovers(health_mesh: Mesh) -> None:
    mesh, address = health_mesh, health_mesh.endpoints.workers["worker-0"]
    assert serving(address)
    hang(mesh, True, engines=(0,))
    wait_for(lambda: not serving(address))  # its Worker service's health: NOT_SERVING
    assert serving(address, "")  # the process's own: alive (liveness probes ask it)
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


def test_a_call_on_an_engine_that_hangs_runs_again_on_another_worker(health_mesh: Mesh) -> None:
    """Workers review 2026-12-05 F2: the calls already on an engine that hangs waited for
    their deadline (600 s by default), though its worker had judged it unhealthy and another
    was free. Now they end UNAVAILABLE there, and one that has streamed nothing (a whole
    call) runs again elsewhere and answers once."""
    mesh = health_mesh
    hung = -1
    try:
        with ostinato.Client(mesh.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(messages=USER, max_tokens=2000,
                                                         ignore_eos=True, call_id="h"))
            first = running_on(mesh, program.program_id, "h")
            hung = index(first)
            hang(mesh, True, engines=(hung,))
            assert running_on(mesh, program.program_id, "h", attempt=2) == other(first)
            thread.join(120)
            assert "error" not in out, out
        result = out["result"]
        assert result.worker_id == other(first) and result.usage.completion_tokens == 2000
        assert program.summary is not None and program.summary.calls_completed == 1
    finally:
        if hung >= 0:
            hang(mesh, False, engines=(hung,))
            wait_for(lambda: serving(mesh.endpoints.workers[f"worker-{hung}"]))


# ---- Redis stopped, then back ------------------------------------------------------------

MODEL = "sim/llama-3.1-8b"


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
        # a response answered without being stored says so (store: false); what needs Redis
        # to answer (a stored response, a conversation) is a 503
        with openai.OpenAI(base_url=f"http://{cache_mesh.endpoints.gateway_http}/v1",
                           api_key="anonymous", max_retries=0) as http:
            unstored = http.responses.create(model=MODEL, input="Name a lake.",
                                             max_output_tokens=4)
            assert unstored.status in ("completed", "incomplete") and unstored.output_text
            assert unstored.store is False
            with pytest.raises(openai.InternalServerError) as err:  # 503: cannot tell
                http.responses.retrieve(unstored.id)
            assert err.value.status_code == 503
            with pytest.raises(openai.InternalServerError) as err:  # nothing kept, and said
                http.conversations.create()
            assert err.value.status_code == 503
        cache_mesh.start_redis()
        r = redis.Redis.from_url(cache_mesh.endpoints.redis_url, decode_responses=True)
        # the planner's records of the outage are written once Redis is back
        stored = inner_id("default", during.program_id)
        wait_for(lambda: r.hget(keys.program_meta(stored), "state") == "ended")
        assert json.loads(r.hget(keys.program_calls(stored), "d1"))["state"] == "done"
        # the answer cache serves again (its first operations may still meet a dead connection)
        tries = 0

        def cached_again() -> bool:
            nonlocal tries
            tries += 1
            text = f"Name a mountain, try {tries}."
            return ask(client, text).cache_hit == "miss" and ask(client, text).cache_hit == "exact"

        wait_for(cached_again)
        assert client.cache_stats().redis_up
