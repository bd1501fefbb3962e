"""A call its caller cancelled while it ran: its worker's report, which follows the cancel,
still says what it used (usage, attained service, fair share), once; the program's summary
counts it cancelled. (SDK review 2026-12-05: cancelled calls were in no count and their
tokens missing from the usage.) Clock-injected."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.model import CallChanged, CallState, NoSuchCall
from planner.core.selection import parse_policy
from planner.translate import summary_proto


def _running() -> tuple[PlannerCore, ManualClock]:
    """Program p of tenant a: call x granted (attempt 1) and run 2 s; call y done."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+round_robin"))
    core.upsert_worker("w0", "addr0", 2)
    core.register_program("p", "a")
    core.submit("p", "a", "y")
    core.submit("p", "a", "x")
    core.dispatch()
    clock.advance(2.0)
    core.complete("p", "y", service_s=1.0, prompt_tokens=10, completion_tokens=4)
    return core, clock


def _summary(core: PlannerCore, clock: ManualClock) -> tuple[int, int, int, int, int]:
    s = summary_proto(core.program("p", "a"), clock.now())
    return (s.calls_completed, s.calls_failed, s.calls_cancelled, s.usage.prompt_tokens,
            s.usage.completion_tokens)


def test_the_report_after_a_cancel_counts_what_the_call_used() -> None:
    core, clock = _running()
    core.cancel("p", "x")
    assert _summary(core, clock) == (1, 0, 1, 10, 4)
    core.take_events()
    call = core.complete("p", "x", state=CallState.CANCELLED, service_s=1.5,
                         prompt_tokens=20, completion_tokens=7, attempt=1)
    assert call.state is CallState.CANCELLED
    assert _summary(core, clock) == (1, 0, 1, 30, 11)
    assert core.program("p", "a").attained_service_s == pytest.approx(2.5)
    assert core._queue.fair_share.vtime["a"] == pytest.approx(2.5)
    # saved again with its usage (a restarted planner's summary keeps it)
    assert any(isinstance(e, CallChanged) and e.call is call for e in core.take_events())


def test_the_gateways_report_of_the_cancel_leaves_the_workers_usage_to_come() -> None:
    """The gateway reports a caller gone (CANCELLED, attempt 0, no usage: it cannot know it)
    while the call is live; the worker's report with what it used comes after and counts.
    (Review 2026-12-06: the gateway's empty report took the call's one report.)"""
    core, clock = _running()
    core.complete("p", "x", state=CallState.CANCELLED)  # the gateway's: zeros
    assert _summary(core, clock) == (1, 0, 1, 10, 4)
    core.complete("p", "x", state=CallState.CANCELLED, service_s=1.5, prompt_tokens=20,
                  completion_tokens=7, attempt=1)
    assert _summary(core, clock) == (1, 0, 1, 30, 11)
    assert core.program("p", "a").attained_service_s == pytest.approx(2.5)


@pytest.mark.parametrize(("first", "again"), [
    ({"attempt": 1}, {"attempt": 1}),  # the report repeated
    ({"attempt": 0}, {"attempt": 1}),
])
def test_it_is_counted_once(first: dict[str, int], again: dict[str, int]) -> None:
    core, clock = _running()
    core.cancel("p", "x")
    core.complete("p", "x", state=CallState.CANCELLED, completion_tokens=7, **first)
    with pytest.raises(NoSuchCall):
        core.complete("p", "x", state=CallState.CANCELLED, completion_tokens=7, **again)
    assert _summary(core, clock) == (1, 0, 1, 10, 11)


def test_a_report_of_another_attempt_is_not_taken() -> None:
    core, clock = _running()
    core.cancel("p", "x")
    with pytest.raises(NoSuchCall):
        core.complete("p", "x", state=CallState.CANCELLED, completion_tokens=7, attempt=2)
    assert _summary(core, clock) == (1, 0, 1, 10, 4)


def test_a_call_cancelled_before_it_ran_takes_no_report() -> None:
    """Dropped while it waited: no worker ran it, so no worker's report is taken for it."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+round_robin"))
    core.register_program("p", "a")
    core.submit("p", "a", "x")  # no worker: it waits
    core.cancel("p", "x")
    with pytest.raises(NoSuchCall):
        core.complete("p", "x", state=CallState.CANCELLED, completion_tokens=7)
    assert _summary(core, clock) == (0, 0, 1, 0, 0)


def test_its_service_is_held_to_the_time_until_the_cancel() -> None:
    """The bound on a report's service (the time since its grant + slack) ends at the cancel:
    a late report cannot claim the time that passed after it."""
    core, clock = _running()
    core.cancel("p", "x")
    clock.advance(100.0)
    call = core.complete("p", "x", state=CallState.CANCELLED, service_s=50.0)
    assert call.service_s == pytest.approx(3.0)  # 2 s ran + SERVICE_SLACK_S


@pytest.mark.parametrize(("reports", "to_come"), [
    ([], False),  # running: not cancelled (the end waits for it as running)
    # the gateway's report of its caller gone holding the grant (no usage: zeros, the
    # attempt it held): its worker's report is to come
    (["gateway-1"], True),
    (["gateway-1", "worker"], False),  # then its worker's, with what it used
    # gone before its grant came (attempt 0), or its admission cancelled at the planner:
    # no worker was sent it (trace review 2026-12-06: the end waited 5 s for nothing)
    (["gateway"], False),
    (["cancel"], False),
    (["worker"], False),  # its worker's own cancelled report: nothing to come
    (["done"], False),
])
def test_a_call_cancelled_while_it_ran_awaits_its_workers_report(reports: list[str],
                                                                 to_come: bool) -> None:
    """SDK review 2026-12-06: a program ended right after a call was cancelled answered its
    summary before the worker's report, without that call's usage. The end waits for calls
    whose usage is still to come (planner/service.py _settled), as for running ones."""
    core, _ = _running()
    for report in reports:
        if report == "cancel":
            core.cancel("p", "x")
        elif report.startswith("gateway"):
            core.complete("p", "x", state=CallState.CANCELLED, attempt=int(report[8:] or 0))
        elif report == "worker":
            core.complete("p", "x", state=CallState.CANCELLED, completion_tokens=7, attempt=1)
        else:
            core.complete("p", "x", completion_tokens=7, attempt=1)
    assert core.program("p", "a").calls["x"].usage_to_come is to_come


def test_a_call_still_running_at_the_end_is_counted_as_running() -> None:
    """SDK review 2026-12-06: 40 calls, the program ended after 1 s: the summary said 8
    cancelled and nothing of the 32 still running, which completed after it (in no count)."""
    core, clock = _running()  # x runs, y done
    core.submit("p", "a", "z")  # runs too (the worker's second slot)
    core.submit("p", "a", "w")  # waits: the end cancels it
    core.dispatch()
    program = core.end_program("p", "a")
    s = summary_proto(program, clock.now())
    assert (s.calls_completed, s.calls_cancelled, s.calls_running) == (1, 1, 2)


@pytest.mark.parametrize(("gateway_cut", "worker_state", "counted"), [
    # the gateway's report of the caller's deadline passed, the worker's with its usage after
    (True, CallState.FAILED, True),
    (True, CallState.CANCELLED, True),
    # a failure the gateway saw (its worker gone): no cut, no report of usage taken after
    (False, CallState.FAILED, False),
])
def test_a_call_cut_by_its_deadline_counts_what_its_worker_reports_after(
        gateway_cut: bool, worker_state: CallState, counted: bool) -> None:
    """SGLang review 2026-12-06: a call cut by the caller's deadline (the gateway reports
    DEADLINE_EXCEEDED: FAILED, zeros) counted none of the 1,139 tokens its engine generated;
    the worker's report, which has them, found no live call."""
    core, clock = _running()
    core.complete("p", "x", state=CallState.FAILED, attempt=1, cut=gateway_cut)
    assert core.awaits_usage("p", "x") is gateway_cut
    assert _summary(core, clock) == (1, 1, 0, 10, 4)
    report = {"state": worker_state, "service_s": 1.5, "prompt_tokens": 20,
              "completion_tokens": 1139, "attempt": 1}
    if not counted:
        with pytest.raises(NoSuchCall):
            core.complete("p", "x", **report)  # type: ignore[arg-type]
        assert _summary(core, clock) == (1, 1, 0, 10, 4)
        return
    call = core.complete("p", "x", **report)  # type: ignore[arg-type]
    assert call.state is CallState.FAILED and not core.awaits_usage("p", "x")
    assert _summary(core, clock) == (1, 1, 0, 30, 1143)
    assert core.program("p", "a").attained_service_s == pytest.approx(2.5)
    with pytest.raises(NoSuchCall):  # once
        core.complete("p", "x", **report)  # type: ignore[arg-type]
