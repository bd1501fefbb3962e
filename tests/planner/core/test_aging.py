"""Slack's scores age while their calls wait (planner/core/aging.py, late_calls.py): a call
moves to the level its slack has reached, so the least slack goes first whenever each call
was queued. Pure, clock-injected."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallRecord, CallState, PlannerCore
from planner.core.aging import LevelCrossings
from planner.core.policies import LATE
from planner.core.selection import parse_policy

THRESHOLDS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0)  # slack's


def _call(score: float) -> CallRecord:
    call = CallRecord("p", f"c{score}", "t", "main", (), 0, 16, 0.0)
    call.score = score
    call.state = CallState.QUEUED
    return call


@pytest.mark.parametrize(("score", "due_at"), [
    (39.8, 9.8),  # level [30, 120): leaves it 9.8 s on
    (10.0, 0.0),  # at its level's lower bound: leaves it at once
    (0.5, 0.5),  # level [0, 1): leaves it as its slack runs out
    (500.0, 380.0),  # the last level ages too (a far deadline)
    (LATE, None),  # late, or no deadline: does not age
    (-1.0, None),  # below every threshold: nowhere lower to go
])
def test_a_call_is_due_when_its_score_leaves_its_level(score: float,
                                                      due_at: float | None) -> None:
    crossings = LevelCrossings(THRESHOLDS)
    call = _call(score)
    crossings.watch(call, 100.0, live=1)
    if due_at is None:
        assert len(crossings) == 0
        return
    assert crossings.next_at() == pytest.approx(100.0 + due_at)
    assert crossings.due(100.0 + due_at - 0.01) == []
    assert crossings.due(crossings.next_at()) == [call]


def test_a_call_no_longer_waiting_is_not_due_and_gone_entries_are_dropped() -> None:
    crossings = LevelCrossings(THRESHOLDS)
    calls = [_call(3.0) for _ in range(100)]
    for call in calls:
        crossings.watch(call, 0.0, live=100)
    for call in calls[1:]:
        call.state = CallState.RUNNING
    late = _call(3.0)
    crossings.watch(late, 0.0, live=2)  # 101 entries for 2 calls waiting: pruned
    assert len(crossings) == 2
    assert crossings.due(10.0) == [calls[0], late]


def _a_then_b(routing: str, a_deadline_s: float, waited_s: float,
              b_deadline_s: float) -> tuple[PlannerCore, list[str]]:
    """One slot, held by another tenant's call: A's call queued at 0, B's (a program of
    deadline `b_deadline_s`) `waited_s` later; then the slot frees. The calls granted."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(f"slack+{routing}"), program_admission=False)
    core.upsert_worker("w0", "a0", 1)
    core.register_program("busy", "u")
    core.submit("busy", "u", "x")
    core.dispatch()
    core.register_program("A", "t", deadline_s=a_deadline_s)
    core.submit("A", "t", "a", max_new_tokens=10)
    clock.advance(waited_s)
    core.dispatch()
    core.register_program("B", "t", deadline_s=b_deadline_s)
    core.submit("B", "t", "b", max_new_tokens=10)
    core.complete("busy", "x")
    return core, [g.call_id for g in core.dispatch()]


@pytest.mark.parametrize("routing", ["round_robin", "affinity"])
def test_the_least_slack_now_goes_first_whenever_each_call_was_queued(routing: str) -> None:
    """Planner review 2026-12-06 F3: A (deadline 40 s) queued at 0 with 39.8 s of slack, B
    (deadline 50 s) queued at 30 with 19.8 s: A has 9.8 s by then, and goes first."""
    assert _a_then_b(routing, 40.0, 30.0, 20.0)[1] == ["a"]


def test_a_call_whose_slack_runs_out_while_it_waits_is_demoted_behind_one_with_slack() -> None:
    core, granted = _a_then_b("round_robin", 3.0, 4.0, 100.0)  # A: 2.8 s of slack, late at 3
    assert granted == ["b"]  # A can no longer make it
    assert core.program("A", "t").calls["a"].score == LATE
