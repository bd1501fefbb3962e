"""Ending a program: no call of it starts once EndProgram arrives. Its queued and blocked
calls are cancelled at once (their Admit callers get FAILED_PRECONDITION), new ones are
refused, and only the calls already running get the end's grace period. (Live review
2026-12-07 F1: while EndProgram waited for its running call, the planner granted the
program's queued calls one after another, 5 of 7, ahead of other tenants' work.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest

from ostinato.clock import ManualClock
from ostinato.v1 import common_pb2, planner_pb2
from planner.core import PlannerCore, ProgramClosed
from planner.core.model import CallState
from planner.core.selection import parse_policy
from planner.store import ProgramStore
from tests.planner.loopback import planner_on_loopback
from tests.redis_cluster import RedisTarget


def _core(p: str = "p") -> tuple[PlannerCore, ManualClock]:
    """Worker w0 with one slot; program `p` of tenant t: a running, b queued, c blocked on b."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+round_robin"))
    core.upsert_worker("w0", "addr0", 1)
    core.register_program(p, "t")
    core.submit(p, "t", "a")
    assert [g.call_id for g in core.dispatch()] == ["a"]
    core.submit(p, "t", "b")
    core.submit(p, "t", "c", parents=["b"])
    return core, clock


def test_closing_cancels_what_waits_and_keeps_what_runs() -> None:
    core, _ = _core()
    program = core.close_program("p", "t")
    assert {c: program.calls[c].state for c in "abc"} == {
        "a": CallState.RUNNING, "b": CallState.CANCELLED, "c": CallState.CANCELLED}
    with pytest.raises(ProgramClosed):
        core.submit("p", "t", "d")
    core.complete("p", "a", service_s=1.0, attempt=1)
    assert core.dispatch() == []  # the slot freed: nothing of p starts
    ended = core.end_program("p", "t")  # ending after closing: the same calls
    assert [ended.calls[c].state for c in "abc"] == [
        CallState.DONE, CallState.CANCELLED, CallState.CANCELLED]


async def _a_running(stub: Any, service: Any) -> None:
    """Worker w0 with one slot, program `p` of tenant t, its call a running there; an end
    waits for a's report (its grace set long)."""
    service.end_grace_s = 60.0  # the running call's report is what ends the wait
    await stub.RegisterWorker(planner_pb2.WorkerRegistration(
        worker_id="w0", address="127.0.0.1:1", max_inflight=1))
    await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
        tenant="t", options=common_pb2.ProgramOptions(program_id="p")))
    await stub.Admit(planner_pb2.AdmitRequest(program_id="p", tenant="t", call_id="a"))


async def _a_done(stub: Any) -> None:
    await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
        planner_pb2.CompletionReport(program_id="p", call_id="a", worker_id="w0",
                                     status=planner_pb2.COMPLETION_STATUS_OK, attempt=1)]))


async def test_end_program_fails_the_waiting_calls_before_the_running_one_ends() -> None:
    core = PlannerCore(ManualClock(), *parse_policy("plas+round_robin"))
    async with planner_on_loopback(core, ManualClock()) as (stub, service):
        await _a_running(stub, service)
        waiting = [asyncio.ensure_future(stub.Admit(planner_pb2.AdmitRequest(
            program_id="p", tenant="t", call_id=c))) for c in ("b", "c")]
        while sum(1 for c in core.program("p", "t").calls.values()
                  if c.state is CallState.QUEUED) < 2:  # both queued behind a
            await asyncio.sleep(0.01)
        ending = asyncio.ensure_future(stub.EndProgram(planner_pb2.EndProgramPlannerRequest(
            program_id="p", tenant="t")))
        # the waiting calls fail while a still runs (before: granted once a's report came,
        # or cancelled only past end_grace_s; the bound is for a loaded machine)
        done, _ = await asyncio.wait(waiting, timeout=30)
        assert len(done) == 2
        for task in waiting:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                task.result()
            assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert not ending.done()  # still waiting for a's report
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Admit(planner_pb2.AdmitRequest(program_id="p", tenant="t", call_id="d"))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await _a_done(stub)
        summary = await ending
        assert (summary.calls_completed, summary.calls_cancelled) == (1, 2)


async def test_an_end_retried_on_a_restarted_planner_gets_the_summary_from_the_store(
        redis_target: RedisTarget) -> None:
    """Soak 2026-12-07: EndProgram sent 36 ms before its planner was killed; the end was
    written, its answer lost, and the restarted planner answered the gateway's retry
    NOT_FOUND (no summary kept there). Now it rebuilds the summary from the ended record."""
    client = redis_target.client(socket_timeout=2.0)
    program_id = f"t#g/{uuid.uuid4().hex}"
    try:
        for restarted in (False, True):
            clock = ManualClock()
            store = ProgramStore(client, clock, timeout_s=1.0, hold_in_outage=True)
            task = asyncio.create_task(store.run())
            core = PlannerCore(clock, *parse_policy("plas+round_robin"))
            try:
                async with planner_on_loopback(core, clock, store) as (stub, service):
                    service.persist_timeout_s = 600.0  # only the write lets the answer go
                    end = planner_pb2.EndProgramPlannerRequest(program_id=program_id, tenant="t")
                    if not restarted:
                        await stub.RegisterWorker(planner_pb2.WorkerRegistration(
                            worker_id="w0", address="127.0.0.1:1", max_inflight=1))
                        await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
                            tenant="t", options=common_pb2.ProgramOptions(program_id=program_id)))
                        await stub.Admit(planner_pb2.AdmitRequest(
                            program_id=program_id, tenant="t", call_id="a"))
                        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
                            planner_pb2.CompletionReport(
                                program_id=program_id, call_id="a", worker_id="w0",
                                status=planner_pb2.COMPLETION_STATUS_OK, attempt=1,
                                usage=common_pb2.Usage(prompt_tokens=10, completion_tokens=4))]))
                        first = await stub.EndProgram(end)
                        continue
                    again = await stub.EndProgram(end)  # the retry, on the new planner
                    assert (again.calls_completed, again.usage.completion_tokens,
                            again.usage.prompt_tokens) == (first.calls_completed, 4, 10) == (
                        1, 4, 10)
                    for other in (planner_pb2.EndProgramPlannerRequest(  # another tenant's
                            program_id=program_id, tenant="u"),
                            planner_pb2.EndProgramPlannerRequest(program_id="t#g/none", tenant="t")):
                        with pytest.raises(grpc.aio.AioRpcError) as exc:
                            await stub.EndProgram(other)
                        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
            finally:
                task.cancel()
    finally:
        await client.aclose()


async def test_a_program_closed_by_its_end_stays_closed_on_a_restarted_planner(
        redis_target: RedisTarget) -> None:
    """The end waits for the running call; a planner restarted meanwhile reads the program
    back closed (before: open, its new calls started until the retried end came)."""
    closing, open_ = (f"t#g/{uuid.uuid4().hex}" for _ in range(2))  # the Redis is shared
    core, clock = _core(closing)
    core.register_program(open_, "t")  # open alongside: restored open
    core.close_program(closing, "t")
    client = redis_target.client(socket_timeout=2.0)
    try:
        store = ProgramStore(client, clock, timeout_s=1.0, hold_in_outage=True)
        task = asyncio.create_task(store.run())
        try:
            await store.publish(core.take_events())
        finally:
            task.cancel()
        restored = [p for p in await ProgramStore(client, ManualClock()).load_open()
                    if p.program_id in (closing, open_)]
    finally:
        await client.aclose()
    assert {p.program_id: p.closed for p in restored} == {closing: True, open_: False}
    fresh = PlannerCore(ManualClock(), *parse_policy("plas+round_robin"))
    fresh.upsert_worker("w0", "addr0", 1)
    for program in restored:
        fresh.restore(program)
    assert fresh.program(closing, "t").calls["a"].state is CallState.RUNNING
    # its caller, whose grant the restart lost, admits it again: the same running call (the
    # worker's report ends it), not refused (diff review 2026-12-07)
    assert fresh.submit(closing, "t", "a") is fresh.program(closing, "t").calls["a"]
    with pytest.raises(ProgramClosed):
        fresh.submit(closing, "t", "d")
    fresh.submit(open_, "t", "e")  # the open one takes calls


async def test_an_end_whose_caller_gives_up_while_calls_settle_still_ends() -> None:
    """Cancellation review 2026-12-08 F3: a caller cut during the end's grace (the SDK's end
    after an error waits as long) left the program closed but open, holding a place under
    its tenant's max_programs until idle. The end goes on without its caller."""
    core = PlannerCore(ManualClock(), *parse_policy("plas+round_robin"))
    async with planner_on_loopback(core, ManualClock()) as (stub, service):
        await _a_running(stub, service)
        ending = stub.EndProgram(planner_pb2.EndProgramPlannerRequest(program_id="p",
                                                                      tenant="t"))
        while not core.program("p", "t").closed:  # the end has begun: it waits for a
            await asyncio.sleep(0.01)
        ending.cancel()  # its caller gives up
        with pytest.raises(asyncio.CancelledError):
            await ending
        assert core.programs_open == 1
        await _a_done(stub)
        async with asyncio.timeout(30):  # ended all the same (the bound: a loaded machine)
            while core.programs_open:
                await asyncio.sleep(0.01)
        summary = await stub.EndProgram(planner_pb2.EndProgramPlannerRequest(
            program_id="p", tenant="t"))  # a retried end: the summary kept
        assert summary.calls_completed == 1
