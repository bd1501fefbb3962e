"""A call its gateway started on a worker ahead of its grant (`started_on`, an early start:
gateway/early_guess.py): granted there, that run is the call's first attempt; granted
elsewhere, the call runs as attempt 2, so the early run's reports (of attempt 1) are of an
attempt replaced; while the call waits, that worker's reports count for nothing. Pure,
clock-injected, table-driven."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, NoSuchCall, PlannerCore
from planner.core.attempts import started_early
from planner.core.model import CallChanged, CallRecord, ProgramRegistered
from planner.core.policies import LEVEL_STEP
from planner.core.selection import parse_policy
from planner.records import call_json, program_fields, program_from_fields


def _core(slots: int = 1, policy: str = "fcfs+least_load") -> PlannerCore:
    prio, route = parse_policy(policy)
    core = PlannerCore(ManualClock(), prio, route, worker_ttl_s=1e9, program_idle_ttl_s=100)
    core.upsert_worker("w0", "addr0", slots)
    core.upsert_worker("w1", "addr1", slots)
    core.register_program("p", "t")
    return core


def _busy(core: PlannerCore, worker_id: str) -> None:
    """One call of another program running on `worker_id`."""
    core.register_program("other", "t")
    core.submit("other", "t", "busy", started_on=worker_id)
    [grant] = core.dispatch()
    assert grant.worker_id == worker_id


@pytest.mark.parametrize(("started_on", "busy", "granted", "attempt"), [
    ("w0", "", "w0", 1),  # the guess was right: the early run is attempt 1
    ("w1", "", "w1", 1),  # as good as least load's w0 (no busier, holding as much): there
    ("w1", "w1", "w0", 2),  # busier than w0: the call runs on w0 as attempt 2
    ("w0", "w1", "w0", 1),
    ("", "", "w0", 1),  # no early start
])
def test_the_attempt_a_grant_names(started_on: str, busy: str, granted: str,
                                   attempt: int) -> None:
    core = _core(slots=2)
    if busy:
        _busy(core, busy)
    core.submit("p", "t", "c", started_on=started_on)
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == (granted, attempt)
    assert core._programs["p"].calls["c"].started_on == ""  # started: settled


def test_a_worker_where_the_programs_context_is_wins_over_an_early_start() -> None:
    core = _core(slots=2, policy="fcfs+affinity")
    core.submit("p", "t", "first")
    [first] = core.dispatch()
    core.complete("p", "first", attempt=1, worker_id=first.worker_id)
    elsewhere = "w1" if first.worker_id == "w0" else "w0"
    core.submit("p", "t", "next", started_on=elsewhere)  # no parents: its program's worker
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == (first.worker_id, 2)


@pytest.mark.parametrize(("policy", "started_priority", "attempt"), [
    ("fcfs+least_load", 0, 1),  # one level: every call's priority is 0
    ("plas+least_load", 5 * LEVEL_STEP, 1),  # a new program's: PLAS's top level
    ("plas+least_load", 0, 1),  # below the grant's: it runs on (only this call waits longer)
    ("plas+least_load", 7 * LEVEL_STEP, 2),  # above it (another tenant's boost): again
])
def test_an_early_run_is_the_attempt_only_at_no_higher_a_priority_than_its_grant_gives(
        policy: str, started_priority: int, attempt: int) -> None:
    """The engine keeps a run's priority: one its grant did not give the call must not
    stand (review 2026-12-07: the last grant's, perhaps another tenant's isolation boost)."""
    core = _core(slots=2, policy=policy)
    core.submit("p", "t", "c", started_on="w0", started_priority=started_priority)
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == ("w0", attempt)


@pytest.mark.parametrize(("reporter", "attempt", "counts"), [
    ("w1", 1, False),  # the early run, granted elsewhere: an attempt replaced
    ("w0", 2, True),   # the granted attempt's worker
    ("", 2, True),     # its gateway's report, naming the grant's attempt
])
def test_reports_once_granted_elsewhere(reporter: str, attempt: int, counts: bool) -> None:
    core = _core(slots=2)
    _busy(core, "w1")
    core.submit("p", "t", "c", started_on="w1")
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == ("w0", 2)
    if counts:
        assert core.complete("p", "c", attempt=attempt, worker_id=reporter).state is CallState.DONE
    else:
        with pytest.raises(NoSuchCall):
            core.complete("p", "c", attempt=attempt, worker_id=reporter)
        assert core._programs["p"].calls["c"].state is CallState.RUNNING


@pytest.mark.parametrize(("reporter", "state", "ended"), [
    ("w1", CallState.DONE, False),       # the early run's answer: the grant decides
    ("w1", CallState.CANCELLED, False),  # the early run cut: the call still waits here
    ("", CallState.CANCELLED, True),     # its gateway's: the caller left before a grant
])
def test_reports_while_the_call_waits(reporter: str, state: CallState, ended: bool) -> None:
    core = _core()
    core.submit("p", "t", "busy0")
    core.submit("p", "t", "busy1")
    core.dispatch()  # both workers full
    core.submit("p", "t", "c", started_on="w1")
    assert core.dispatch() == []
    if ended:
        assert core.complete("p", "c", state=state, worker_id=reporter).state is state
        return
    with pytest.raises(NoSuchCall, match="ahead of its grant"):
        core.complete("p", "c", state=state, attempt=1, worker_id=reporter)
    core.complete("p", "busy1", worker_id="w1")  # w1 frees: the call is granted there
    [grant] = core.dispatch()
    assert (grant.call_id, grant.worker_id, grant.attempt) == ("c", "w1", 1)
    assert core.complete("p", "c", attempt=1, worker_id="w1").state is CallState.DONE


@pytest.mark.parametrize(("started_on", "worker", "attempt"), [
    ("w0", "w0", 3), ("w0", "w1", 4), ("", "w1", 3)])
@pytest.mark.parametrize("priority", [None, 0, 10])
def test_started_early(started_on: str, worker: str, attempt: int, priority: int | None) -> None:
    call = CallRecord(program_id="p", call_id="c", tenant="t", thread_id="main", parents=(),
                      prompt_tokens=1, max_new_tokens=1, arrival=0.0, attempt=3,
                      started_on=started_on, started_priority=5)
    if started_on:
        started_early(call, worker, priority)
        attempt += priority == 0 and worker == started_on  # granted below it: runs again
    assert (call.attempt, call.started_on) == (attempt, "")


@pytest.mark.parametrize("policy", ["fcfs+cache_aware", "fcfs+round_robin"])
def test_a_routing_policy_keeps_where_an_early_start_went_not_its_own_choice(
        policy: str) -> None:
    """cache_aware chose w0 (least loaded, nothing indexed), round_robin w0 (first): the
    call starts on w1, as good, and each policy keeps that (review 2026-12-07)."""
    core = _core(slots=2, policy=policy)
    core.submit("p", "t", "c", started_on="w1", prefix_hashes=[7, 8])
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == ("w1", 1)
    routing = core._routing
    if policy.endswith("cache_aware"):
        assert (routing.matched_blocks("w1", [7, 8]), routing.matched_blocks("w0", [7, 8])) \
            == (2, 0)
    else:  # the rotation goes on from w1: w0 next
        core.submit("p", "t", "d")
        [grant] = core.dispatch()
        assert grant.worker_id == "w0"


def test_cache_aware_keeps_a_call_where_its_own_index_has_the_prompt() -> None:
    """Without the KV-reference index (kv_matches), the policy's own index says what a
    worker holds: an early start elsewhere is no match for it (review 2026-12-07)."""
    core = _core(slots=2, policy="fcfs+cache_aware")
    core.submit("p", "t", "a", prefix_hashes=[7, 8, 9])
    [first] = core.dispatch()
    core.complete("p", "a", attempt=1, worker_id=first.worker_id)
    other = "w1" if first.worker_id == "w0" else "w0"
    core.register_program("q", "t")
    core.submit("q", "t", "c", started_on=other, prefix_hashes=[7, 8, 9])
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == (first.worker_id, 2)


def _early_run_held_10_s() -> tuple[PlannerCore, ManualClock]:
    """Call y of program p, started early on w0, held 10 s at the planner (w0 full), then
    granted there: the early run is its attempt 1."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+least_load"), worker_ttl_s=1e9)
    core.upsert_worker("w0", "addr0", 1)
    core.register_program("q", "other")
    core.submit("q", "other", "x")
    core.dispatch()
    core.register_program("p", "t")
    core.submit("p", "t", "y", started_on="w0", started_priority=0)
    clock.advance(10.0)
    core.complete("q", "x", service_s=10.0)
    assert [(g.call_id, g.worker_id, g.attempt) for g in core.dispatch()] == [("y", "w0", 1)]
    return core, clock


def test_an_early_run_held_at_the_planner_is_charged_its_whole_run() -> None:
    """Started early on w0, the call waits 10 s at the planner (w0 full), is granted there
    (the early run is its attempt 1) and ends 1 s later, its worker reporting the 11 s it
    ran: all 11 are charged, not the 2 since its grant (a review found the cap cut them)."""
    core, clock = _early_run_held_10_s()
    clock.advance(1.0)
    core.complete("p", "y", service_s=11.0, worker_id="w0", attempt=1)
    assert core.program("p", "t").attained_service_s == pytest.approx(11.0)


WALL = 1_700_000_000.0


def test_an_early_run_confirmed_before_a_restart_is_charged_its_whole_run() -> None:
    """The call's record says its early run was its attempt (a review found a restart
    charged it from its grant again)."""
    core, clock = _early_run_held_10_s()
    meta: dict[str, str] = {}
    calls: dict[str, str] = {}
    for event in core.take_events():  # what the store holds of p when the planner dies
        if isinstance(event, ProgramRegistered) and event.program.program_id == "p":
            meta = program_fields(event.program, WALL + clock.now(), clock.now())
        elif isinstance(event, CallChanged) and event.call.program_id == "p":
            calls[event.call.call_id] = call_json(event.call, WALL + clock.now(), clock.now())
    new_clock = ManualClock(start=500.0)
    new = PlannerCore(new_clock, *parse_policy("plas+least_load"), worker_ttl_s=1e9)
    new.upsert_worker("w0", "addr0", 1)
    new.restore(program_from_fields("p", meta, calls, WALL + clock.now(), new_clock.now()))
    new_clock.advance(1.0)
    new.complete("p", "y", service_s=11.0, worker_id="w0", attempt=1)
    assert new.program("p", "t").attained_service_s == pytest.approx(11.0)
