"""CompletionReporter (ostinato/completion_reports.py) against a real planner servicer on
loopback: reports queued together leave in one ReportCompletions RPC."""

from __future__ import annotations

import asyncio

from ostinato.clock import SystemClock
from ostinato.completion_reports import CompletionReporter
from planner.core import CallState, PlannerCore
from planner.core.selection import parse_policy
from tests.planner.loopback import calls_running_on_w0, planner_on_loopback
from tests.planner.test_completion_reports import completion_report


async def test_reports_queued_together_leave_in_one_rpc() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub, "a", "b", "c")
        done: list[str] = []
        reporter = CompletionReporter(stub, linger_s=0.01,
                                      on_done=lambda r: done.append(r.call_id))
        for call_id in ("a", "b", "c"):
            reporter.send(completion_report(call_id))
        await reporter.drain(10.0)
        assert reporter.batches == 1 and done == ["a", "b", "c"]
        calls = core.program("p", "t").calls
        assert all(calls[c].state is CallState.DONE for c in "abc")


async def test_flush_sends_a_lingering_batch_at_once() -> None:
    """A batch lingering for a minute leaves on flush (a call continuing its program waits
    at the planner for these reports); drain's bound is far shorter than the linger."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub, "a", "b")
        done: list[str] = []
        reporter = CompletionReporter(stub, linger_s=60.0,
                                      on_done=lambda r: done.append(r.call_id))
        reporter.send(completion_report("a"))
        reporter.send(completion_report("b"))
        reporter.flush()
        await reporter.drain(20.0)
        assert reporter.batches == 1 and done == ["a", "b"]
        assert all(core.program("p", "t").calls[c].state is CallState.DONE for c in "ab")


async def test_queued_through_waits_for_what_was_queued_before_it_only() -> None:
    """A program's summary waits for the reports of its calls answered so far, not for
    the reports queued after (a busy gateway always has more)."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub, "a", "b")
        reporter = CompletionReporter(stub)
        await reporter.queued_through(1.0)  # nothing queued: at once
        reporter.send(completion_report("a"))
        waiting = asyncio.ensure_future(reporter.queued_through(30.0))
        reporter.send(completion_report("b"))
        await waiting
        assert core.program("p", "t").calls["a"].state is CallState.DONE
        await reporter.drain(10.0)
