"""The planner's metrics: gauges read from the core at scrape time, and the servicer's
counters moved by real RPCs on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from ostinato.clock import ManualClock, SystemClock
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.metrics import PlannerMetrics
from planner.service import PlannerService
from tests.planner.loopback import planner_on_loopback as loopback
from tests.planner.test_parking import planner_with_a_full_home
from tests.prometheus_text import of_registry, value


def test_gauges_read_queue_depth_per_tenant_and_level_running_budget_and_programs() -> None:
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+round_robin"), max_home_wait_s=0.0)
    metrics = PlannerMetrics(core)
    core.upsert_worker("w0", "a0", 1)
    core.upsert_worker("w1", "a1", 2)
    for program, tenant in (("old", "acme"), ("new", "acme"), ("g", "globex")):
        core.register_program(program, tenant)
    core.submit("old", "acme", "first")
    core.dispatch()
    core.complete("old", "first", service_s=2.0)  # attained 2 s: level 2
    for i in range(3):
        core.submit("old", "acme", f"o{i}")
        core.submit("new", "acme", f"n{i}")
    core.submit("g", "globex", "g0")
    grants = core.dispatch()
    assert len(grants) == 3  # budgets 1 + 2
    s = of_registry(metrics.registry)
    assert value(s, "ostinato_planner_running_calls", worker="w0") == 1
    assert value(s, "ostinato_planner_running_calls", worker="w1") == 2
    assert value(s, "ostinato_planner_worker_budget", worker="w1") == 2
    assert value(s, "ostinato_planner_programs_open") == 3
    depth = {(t, lv): value(s, "ostinato_planner_queue_depth", tenant=t, level=lv)
             for t in ("acme", "globex") for lv in ("0", "2")}
    assert sum(depth.values()) == value(s, "ostinato_planner_queue_depth") == core.queued == 4
    assert depth[("acme", "2")] == 3 - sum(g.call_id.startswith("o") for g in grants)
    assert depth[("acme", "0")] == 3 - sum(g.call_id.startswith("n") for g in grants)
    core.end_program("new", "acme")  # its queued calls are cancelled: they leave the gauge
    s = of_registry(metrics.registry)
    assert value(s, "ostinato_planner_queue_depth", level="0") == depth[("globex", "0")]
    assert value(s, "ostinato_planner_programs_open") == 2


def test_a_queue_that_empties_reads_0_then_its_series_goes() -> None:
    """An emptied queue's series reads 0 (it stopped at its last count: a dashboard drew it
    as never draining), for planner.metrics.ZERO_HOLD_S; then it is no longer exported."""
    from planner.metrics import ZERO_HOLD_S

    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"))
    metrics = PlannerMetrics(core, clock=clock)
    core.register_program("p", "acme")
    core.submit("p", "acme", "c")
    s = of_registry(metrics.registry)
    assert value(s, "ostinato_planner_queue_depth", tenant="acme", level="0") == 1
    core.upsert_worker("w0", "a0", 1)
    assert len(core.dispatch()) == 1
    for _ in range(2):  # emptied, and still empty a while later
        s = of_registry(metrics.registry)
        assert value(s, "ostinato_planner_queue_depth", tenant="acme", level="0") == 0
        clock.advance(ZERO_HOLD_S)
    clock.advance(1.0)
    assert "tenant=\"acme\"" not in _exposition(metrics)


def test_calls_waiting_for_their_program_to_start_are_counted() -> None:
    """Planner review 2026-12-06 F2: calls held by program admission were in no gauge."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), kv_tokens_per_worker=1000,
                       program_kv_fraction=1.0, isolation_fraction=1.0)
    metrics = PlannerMetrics(core, clock=clock)
    core.upsert_worker("w0", "a0", 8)
    for program in ("p0", "p1"):  # p0's context fills the pool: p1 waits to start
        core.register_program(program, "t")
        core.submit(program, "t", "c", prompt_tokens=900)
    assert [g.program_id for g in core.dispatch()] == ["p0"]
    s = of_registry(metrics.registry)
    assert value(s, "ostinato_planner_admission_waiting_calls", tenant="t") == 1
    core.end_program("p0", "t")
    assert [g.program_id for g in core.dispatch()] == ["p1"]
    s = of_registry(metrics.registry)
    assert value(s, "ostinato_planner_admission_waiting_calls", tenant="t") == 0


def _exposition(metrics: PlannerMetrics) -> str:
    from prometheus_client import generate_latest

    return "\n".join(line for line in generate_latest(metrics.registry).decode().splitlines()
                     if line.startswith("ostinato_planner_queue_depth"))


def test_parked_calls_per_worker_and_tenant() -> None:
    core, _, home, _ = planner_with_a_full_home()  # p's call c1 waits for its home worker
    s = of_registry(PlannerMetrics(core).registry)
    assert value(s, "ostinato_planner_parked_calls", worker=home, tenant="t") == 1
    assert value(s, "ostinato_planner_parked_calls") == 1
    assert value(s, "ostinato_planner_queue_depth") == 0


@asynccontextmanager
async def planner_on_loopback(budget: int) -> AsyncIterator[tuple[planner_pb2_grpc.PlannerStub,
                                                                  PlannerService]]:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with loopback(core, SystemClock()) as (stub, service):
        await stub.RegisterWorker(planner_pb2.WorkerRegistration(
            worker_id="w0", address="127.0.0.1:1", max_inflight=budget))
        yield stub, service


def _admit(program: str, call: str, tenant: str = "acme") -> planner_pb2.AdmitRequest:
    return planner_pb2.AdmitRequest(program_id=program, tenant=tenant, call_id=call)


async def test_counters_follow_admissions_grants_rejections_and_reports() -> None:
    async with planner_on_loopback(budget=1) as (stub, service):
        await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="acme", options=common_pb2.ProgramOptions(program_id="p")))
        grant = await stub.Admit(_admit("p", "c1"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Admit(_admit("nope", "c1"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        await stub.Admit(planner_pb2.AdmitRequest(program_id="p", tenant="acme", call_id="hit",
                                                  served_from_cache=True))
        await stub.ReportCompletion(planner_pb2.CompletionReport(
            program_id="p", call_id="c1", worker_id=grant.worker_id,
            status=planner_pb2.COMPLETION_STATUS_OK))
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_calls_admitted_total", tenant="acme") == 1
    assert value(s, "ostinato_planner_calls_served_from_cache_total", tenant="acme") == 1
    assert value(s, "ostinato_planner_calls_granted_total", worker="w0") == 1
    assert value(s, "ostinato_planner_calls_rejected_total", code="NOT_FOUND") == 1
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0", status="ok") == 1
    assert value(s, "ostinato_planner_queue_wait_seconds_count") == 1
    assert value(s, "ostinato_planner_running_calls", worker="w0") == 0


async def test_a_caller_that_gives_up_waiting_is_counted_cancelled() -> None:
    async with planner_on_loopback(budget=1) as (stub, service):
        await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="acme", options=common_pb2.ProgramOptions(program_id="p")))
        await stub.Admit(_admit("p", "runs"))
        waiting = stub.Admit(_admit("p", "waits"))  # the budget is full: it queues
        while value(of_registry(service.metrics.registry), "ostinato_planner_queue_depth") < 1:
            await asyncio.sleep(0.01)  # until the planner has queued it
        waiting.cancel()
        async with asyncio.timeout(5):
            while value(of_registry(service.metrics.registry),
                        "ostinato_planner_calls_cancelled_total") < 1:  # the server sees it
                await asyncio.sleep(0.01)
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_calls_cancelled_total", tenant="acme") == 1
    assert value(s, "ostinato_planner_queue_depth") == 0


async def test_a_call_cancelled_while_it_ran_is_one_completion() -> None:
    """Trace review 2026-12-06: the gateway's report of its caller gone and the worker's
    report of what the call used were each counted: completed{cancelled} +2 a call."""
    async with planner_on_loopback(budget=1) as (stub, service):
        await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="acme", options=common_pb2.ProgramOptions(program_id="p")))
        grant = await stub.Admit(_admit("p", "c1"))
        for usage in (common_pb2.Usage(), common_pb2.Usage(completion_tokens=7)):  # gateway's, worker's
            await stub.ReportCompletion(planner_pb2.CompletionReport(
                program_id="p", call_id="c1", worker_id=grant.worker_id, attempt=grant.attempt,
                status=planner_pb2.COMPLETION_STATUS_CANCELLED, usage=usage, service_s=0.0
                if not usage.completion_tokens else 0.5))
        s = of_registry(service.metrics.registry)
        summary = await stub.EndProgram(planner_pb2.EndProgramPlannerRequest(tenant="acme",
                                                                           program_id="p"))
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0",
                 status="cancelled") == 1
    assert summary.usage.completion_tokens == 7  # and the worker's report was taken
