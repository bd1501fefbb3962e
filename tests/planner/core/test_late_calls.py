"""A call of a reject_when_late program still waiting when its deadline passes is refused
when its turn comes (FAILED, its caller told DEADLINE_EXCEEDED), under every policy, not
granted (review F13: the deadline was checked only when the call was scored, at submit).
Pure, clock-injected."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, DeadlineExceeded, PlannerCore
from planner.core.model import CallRefused
from planner.core.selection import parse_policy

POLICIES = ["fcfs+round_robin", "srpt+affinity", "plas+cache_aware", "atlas+least_load",
            "slack+least_load"]


def _waiting_past_its_deadline(policy: str, reject: bool, waited_s: float,
                               max_new_tokens: int = 10) -> tuple[PlannerCore, ManualClock]:
    """Program p (deadline 5 s) has call c waiting `waited_s` behind another tenant's call
    on the one slot; that call has just ended."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy), program_admission=False)
    core.upsert_worker("w0", "addr0", 1)
    core.register_program("busy", "u")
    core.submit("busy", "u", "x")
    core.dispatch()
    core.register_program("p", "t", deadline_s=5.0, reject_when_late=reject)
    core.submit("p", "t", "c", max_new_tokens=max_new_tokens)
    core.submit("p", "t", "child", parents=["c"])
    clock.advance(waited_s)
    core.complete("busy", "x")
    core.take_events()
    return core, clock


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("reject", "waited_s", "granted"), [
    (True, 30.0, False),  # past its deadline: refused
    (True, 5.0, False),  # at it
    (True, 4.0, True),  # before it
    (False, 30.0, True),  # late, but its program did not ask to be refused
])
def test_a_waiting_call_past_its_deadline_is_refused_when_asked(
        policy: str, reject: bool, waited_s: float, granted: bool) -> None:
    core, _ = _waiting_past_its_deadline(policy, reject, waited_s)
    grants = core.dispatch()
    call = core.program("p", "t").calls["c"]
    if granted:
        assert [g.call_id for g in grants] == ["c"]
        return
    assert grants == []
    assert call.state is CallState.FAILED
    refused = [e for e in core.take_events() if isinstance(e, CallRefused)]
    # its child, now unblocked, comes late as well
    assert [e.call.call_id for e in refused] == ["c", "child"]
    assert all(isinstance(e.error, DeadlineExceeded) for e in refused)
    worker = core.worker("w0")
    assert worker is not None and worker.inflight == 0 and core.queued == 0
    core.register_program("q", "t")  # the slot goes to the next call
    core.submit("q", "t", "d")
    assert [g.call_id for g in core.dispatch()] == ["d"]


def test_a_parked_call_past_its_deadline_is_refused_on_its_home() -> None:
    """A call parked on its home worker (affinity) is looked at as it leaves its lane."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+affinity"), program_admission=False,
                       max_home_wait_s=100.0)
    core.upsert_worker("w0", "addr0", 1)
    core.upsert_worker("w1", "addr1", 1)
    core.register_program("p", "t", deadline_s=5.0, reject_when_late=True)
    core.submit("p", "t", "a")
    assert [g.worker_id for g in core.dispatch()] == ["w0"]
    core.complete("p", "a")
    core.register_program("busy", "u")
    core.submit("busy", "u", "x")
    core.dispatch()  # x takes w0, a's worker: p's next call parks there, its home
    core.submit("p", "t", "b", parents=["a"])
    core.dispatch()
    assert core.program("p", "t").calls["b"].parked
    clock.advance(10.0)
    core.complete("busy", "x")
    assert core.dispatch() == []
    assert core.program("p", "t").calls["b"].state is CallState.FAILED
    assert core.parked_counts() == {}


@pytest.mark.parametrize(("policy", "waited_s", "granted"), [
    ("slack+least_load", 3.5, False),  # 1.5 s left, ~2 s of work: its slack has run out
    ("slack+least_load", 2.5, True),  # 2.5 s left: it may still make it
    ("fcfs+round_robin", 3.5, True),  # other policies refuse only past the deadline
    ("srpt+affinity", 3.5, True),
])
def test_under_slack_a_waiting_call_whose_slack_ran_out_is_refused_at_its_turn(
        policy: str, waited_s: float, granted: bool) -> None:
    """Planner review 2026-12-06 F4: queued with slack to spare, a call of a reject_when_late
    program ran when its turn came too late to make the deadline; a call coming then is
    refused at once."""
    # c asks 100 tokens: ~2 s of work at 20 ms a token
    core, _ = _waiting_past_its_deadline(policy, True, waited_s, max_new_tokens=100)
    grants = core.dispatch()
    assert [g.call_id for g in grants] == (["c"] if granted else [])
    state = core.program("p", "t").calls["c"].state
    assert state is (CallState.RUNNING if granted else CallState.FAILED)
