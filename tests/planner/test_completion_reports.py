"""ReportCompletions: many completion reports in one RPC, each taken as ReportCompletion
takes it (a repeat is ignored); a batch with a report lacking its status is refused whole."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from ostinato.clock import ManualClock, SystemClock
from ostinato.v1 import common_pb2, planner_pb2
from planner.core import CallState, PlannerCore
from planner.core.model import UnknownProgram
from planner.core.selection import parse_policy
from tests.planner.loopback import calls_running_on_w0, planner_on_loopback
from tests.prometheus_text import of_registry, value


def completion_report(call_id: str, status: int = planner_pb2.COMPLETION_STATUS_OK,
            tokens: int = 3) -> planner_pb2.CompletionReport:
    return planner_pb2.CompletionReport(program_id="p", call_id=call_id, worker_id="w0",
                                        status=status, attempt=1, service_s=0.5,
                                        usage=common_pb2.Usage(completion_tokens=tokens))


async def test_a_batch_takes_each_report_once_and_a_repeat_changes_nothing() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, service):
        await calls_running_on_w0(stub, "a", "b", "c")
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            completion_report("a"), completion_report("b", planner_pb2.COMPLETION_STATUS_FAILED)]))
        # the gateway's report of "a" (already in) and the worker's of "c"
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            completion_report("a", tokens=99), completion_report("c")]))
        calls = core.program("p", "t").calls
        assert [calls[c].state for c in "abc"] == [CallState.DONE, CallState.FAILED,
                                                   CallState.DONE]
        assert calls["a"].completion_tokens == 3  # the repeat changed nothing
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0", status="ok") == 2
    assert value(s, "ostinato_planner_running_calls", worker="w0") == 0


def thinking_report(call_id: str, tokens: int, reasoning: int,
                    attempt: int = 1) -> planner_pb2.CompletionReport:
    report = completion_report(call_id, tokens=tokens)
    report.usage.reasoning_tokens, report.attempt = reasoning, attempt
    return report


async def test_the_gateways_count_of_the_thinking_is_kept_whichever_report_comes_first() -> None:
    """The worker cannot count a reasoning model's thinking; the gateway can, and its report
    of the same call may come second: its count is kept (never above the output, never
    lowered, not for another attempt), and the program's summary adds them up."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub, "a", "b", "c", "d")
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            completion_report("a", tokens=10),  # the worker's first, then the gateway's
            thinking_report("a", 10, 6),
            thinking_report("b", 10, 4),  # the gateway's first, then the worker's
            completion_report("b", tokens=10),
            completion_report("c", tokens=5), thinking_report("c", 5, 50),  # capped
            completion_report("d", tokens=8), thinking_report("d", 8, 3, attempt=2)]))
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            thinking_report("a", 10, 2)]))  # a lower count later: not taken
        calls = core.program("p", "t").calls
        assert [calls[c].reasoning_tokens for c in "abcd"] == [6, 4, 5, 0]
        summary = await stub.EndProgram(planner_pb2.EndProgramPlannerRequest(
            tenant="t", program_id="p"))
    assert summary.usage.reasoning_tokens == 15 and summary.usage.completion_tokens == 33


async def test_a_batch_with_a_report_without_status_is_refused_whole() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub, "a")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
                completion_report("a"), completion_report("a", planner_pb2.COMPLETION_STATUS_UNSPECIFIED)]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "reports[1]" in (err.value.details() or "")
        assert core.program("p", "t").calls["a"].state is CallState.RUNNING


async def test_a_status_added_after_this_planner_is_taken_as_failed() -> None:
    """A newer worker or gateway in a rolling upgrade: its report is not refused (with the
    batch's others), the call ends failed."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, service):
        await calls_running_on_w0(stub, "a", "b")
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            completion_report("a"), completion_report("b", 99)]))  # type: ignore[arg-type]
        calls = core.program("p", "t").calls
        assert (calls["a"].state, calls["b"].state) == (CallState.DONE, CallState.FAILED)
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0", status="failed") == 1


async def test_a_one_call_program_ends_with_its_report_and_keeps_no_summary() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, service):
        await calls_running_on_w0(stub)
        await stub.Admit(planner_pb2.AdmitRequest(
            program_id="one", tenant="t", call_id="c", end_program_after=True,
            register_program=common_pb2.ProgramOptions(program_id="one")))
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            planner_pb2.CompletionReport(program_id="one", call_id="c", worker_id="w0",
                                         status=planner_pb2.COMPLETION_STATUS_OK, attempt=1)]))
        with pytest.raises(UnknownProgram):  # ended: the core no longer has it
            core.program("one", "t")
        # nobody ends a one-call program: no summary is kept for a repeated EndProgram
        assert service._endings.ended("t", "one") is None
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_running_calls", worker="w0") == 0


async def test_a_call_its_deadline_cut_is_failed_counted_apart_and_ends_its_one_call_program(
        ) -> None:
    """DEADLINE_EXCEEDED (from the gateway or the worker): failed in the program's summary,
    `deadline_exceeded` in the metric, and final (a one-call program ends with it, as with
    a cancelled call; a failed one waits for the gateway's retry)."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, service):
        await calls_running_on_w0(stub, "a")
        await stub.Admit(planner_pb2.AdmitRequest(
            program_id="one", tenant="t", call_id="c", end_program_after=True,
            register_program=common_pb2.ProgramOptions(program_id="one")))
        deadline = planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            completion_report("a", deadline),
            planner_pb2.CompletionReport(program_id="one", call_id="c", worker_id="w0",
                                         status=deadline, attempt=1)]))
        assert core.program("p", "t").calls["a"].state is CallState.FAILED
        with pytest.raises(UnknownProgram):
            core.program("one", "t")
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0",
                 status="deadline_exceeded") == 2
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0", status="failed") == 0


async def test_the_workers_report_after_the_gateways_deadline_report_is_its_usage() -> None:
    """SGLang review 2026-12-06: the gateway's DEADLINE_EXCEEDED report (zeros) came first,
    and the worker's, with what the engine generated, found no live call: the summary
    counted nothing of it. Now taken as the call's usage, and counted once in the metric."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, service):
        await calls_running_on_w0(stub, "a")
        deadline = planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED
        gateways = completion_report("a", deadline, tokens=0)
        gateways.service_s = 0.0  # (it knows nothing of what the call used)
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[gateways]))
        await stub.ReportCompletions(planner_pb2.CompletionReports(reports=[
            completion_report("a", deadline, tokens=1139)]))  # the worker's
        call = core.program("p", "t").calls["a"]
        assert (call.state, call.completion_tokens) == (CallState.FAILED, 1139)
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_planner_calls_completed_total", worker="w0",
                 status="deadline_exceeded") == 1


@pytest.mark.parametrize("policy", ["srpt+round_robin", "slack+round_robin"])
async def test_a_waiting_call_refused_when_its_parent_ends_late_is_told_so(policy: str) -> None:
    """A reject_when_late program's call waiting on its parent: the parent's report comes
    after the deadline, so the call can no longer start. Its Admit ends with
    DEADLINE_EXCEEDED (it waited for a grant that never came, till the caller's deadline)."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy))
    async with planner_on_loopback(core, clock) as (stub, _):
        await stub.RegisterWorker(planner_pb2.WorkerRegistration(
            worker_id="w0", address="127.0.0.1:1", max_inflight=4))
        await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="t", options=common_pb2.ProgramOptions(
                program_id="p", reject_when_late=True, deadline=Duration(seconds=100))))
        await stub.Admit(planner_pb2.AdmitRequest(program_id="p", tenant="t", call_id="a"))
        waiting = asyncio.ensure_future(stub.Admit(planner_pb2.AdmitRequest(
            program_id="p", tenant="t", call_id="b", parent_call_ids=["a"])))
        while "b" not in core.program("p", "t").calls:  # admitted, blocked on "a"
            await asyncio.sleep(0.01)
        clock.set(150.0)
        await stub.ReportCompletion(completion_report("a"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(waiting, 30)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline" in (err.value.details() or "")
    assert core.program("p", "t").calls["b"].state is CallState.FAILED
