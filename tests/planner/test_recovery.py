"""Planner restart: records written by one core, read back into a fresh one (pure, no Redis)."""

from __future__ import annotations

import json

import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, DuplicateCall, NoSuchCall, Overloaded, PlannerCore
from planner.core.model import CallChanged, ProgramRegistered
from planner.core.selection import parse_policy
from planner.records import CorruptRecord, call_json, program_fields, program_from_fields

WALL = 1_700_000_000.0


def make_core(clock: ManualClock, workers: int = 1, budget: int = 2) -> PlannerCore:
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), orphan_ttl_s=30,
                       unstarted_grant_s=10.0)  # tests/planner/test_reconcile.py restores too
    for i in range(workers):
        core.upsert_worker(f"w{i}", f"127.0.0.1:{9000 + i}", budget)
    return core


def persist(core: PlannerCore, clock: ManualClock) -> tuple[dict[str, str], dict[str, str]]:
    """What planner/store.py would have written: the latest record of each event."""
    meta: dict[str, str] = {}
    calls: dict[str, str] = {}
    for event in core.take_events():
        if isinstance(event, ProgramRegistered):
            meta = program_fields(event.program, WALL + clock.now(), clock.now())
        elif isinstance(event, CallChanged):
            calls[event.call.call_id] = call_json(event.call, WALL + clock.now(), clock.now())
    return meta, calls


def crashed_mid_program() -> tuple[PlannerCore, ManualClock]:
    """done: a; running: b (on w0); queued: c (budget full); blocked: d (on b)."""
    clock = ManualClock()
    old = make_core(clock, budget=1)
    old.register_program("p", "acme", deadline_s=100.0)
    old.submit("p", "acme", "a")
    old.dispatch()
    clock.advance(1)
    old.complete("p", "a", service_s=1.0, completion_tokens=40, reasoning_tokens=30)
    old.submit("p", "acme", "b", parents=["a"])
    old.submit("p", "acme", "c", parents=["a"])
    old.submit("p", "acme", "d", parents=["b"])
    assert [g.call_id for g in old.dispatch()] == ["b"]
    clock.advance(2)
    meta, calls = persist(old, clock)
    # the new process starts 5 s later (wall), on a fresh clock
    new_clock = ManualClock(start=50.0)
    program = program_from_fields("p", meta, calls, WALL + clock.now() + 5, new_clock.now())
    new = make_core(new_clock, budget=1)
    new.restore(program)
    return new, new_clock


def test_restore_keeps_history_running_calls_and_deadline() -> None:
    core, clock = crashed_mid_program()
    program = core.program("p", "acme")
    states = {c.call_id: c.state for c in program.calls.values()}
    assert states == {"a": CallState.DONE, "b": CallState.RUNNING, "c": CallState.QUEUED,
                      "d": CallState.BLOCKED}
    assert program.attained_service_s == pytest.approx(1.0)
    a = program.calls["a"]  # its usage, the thinking's tokens included
    assert (a.completion_tokens, a.reasoning_tokens) == (40, 30)
    assert program.deadline_at == pytest.approx(clock.now() + 100 - 8)  # 3 s before, 5 s down
    assert core.workers[0].inflight == 1  # b still holds its slot on w0
    assert core.dispatch() == []  # nothing starts without a caller waiting for it


def test_readmitted_running_call_gets_the_same_grant_and_runs_once() -> None:
    core, _ = crashed_mid_program()
    call = core.submit("p", "acme", "b", parents=["a"])
    assert call.state is CallState.RUNNING and call.worker_id == "w0"
    assert call.worker_address == "127.0.0.1:9000"
    with pytest.raises(DuplicateCall):  # a second admission of it is a real duplicate
        core.submit("p", "acme", "b", parents=["a"])
    core.complete("p", "b", service_s=2.0)
    assert core.workers[0].inflight == 0


def test_readmitted_waiting_call_keeps_its_place_and_dependencies() -> None:
    core, clock = crashed_mid_program()
    arrival = core.program("p", "acme").calls["c"].arrival
    clock.advance(1)
    core.submit("p", "acme", "d", parents=["b"])
    core.submit("p", "acme", "c", parents=["a"])
    assert core.program("p", "acme").calls["c"].arrival == arrival  # waiting time kept
    assert core.dispatch() == []  # b (restored, running) still holds w0's only slot
    core.complete("p", "b", service_s=2.0)  # the worker's retried report arrives
    assert [g.call_id for g in core.dispatch()] == ["c"]
    core.complete("p", "c", service_s=1.0)
    assert [g.call_id for g in core.dispatch()] == ["d"]


def test_orphans_not_readmitted_expire_and_a_report_of_an_unpersisted_grant_counts() -> None:
    core, clock = crashed_mid_program()
    core.complete("p", "c", service_s=1.0)  # c ran, but its grant had not reached Redis
    assert core.program("p", "acme").calls["c"].state is CallState.DONE
    clock.advance(31)
    core.expire()
    assert core.program("p", "acme").calls["d"].state is CallState.CANCELLED


def test_a_new_worker_registration_counts_restored_running_calls() -> None:
    core, _ = crashed_mid_program()
    core.remove_worker("w0")
    core.upsert_worker("w0", "127.0.0.1:9000", 1)
    assert core.workers[0].inflight == 1


@pytest.mark.parametrize("meta,calls", [
    ({}, {}),
    ({"tenant": "t", "created_wall": "x"}, {}),
    ({"tenant": "t", "created_wall": "1"}, {"a": "{not json"}),
    ({"tenant": "t", "created_wall": "1"}, {"a": json.dumps({"state": "exploded"})}),
])
def test_unreadable_records_raise_corrupt_record(meta: dict, calls: dict) -> None:
    with pytest.raises(CorruptRecord):
        program_from_fields("p", meta, calls, WALL, 0.0)


@pytest.mark.parametrize("conversation", [True, False])
def test_a_restored_conversation_still_counts_only_while_busy(conversation: bool) -> None:
    clock = ManualClock()
    old = make_core(clock, budget=4)
    old.register_program("p", "acme", conversation=conversation)
    old.submit("p", "acme", "a")
    old.dispatch()
    meta, calls = persist(old, clock)
    new = make_core(ManualClock(start=50.0), budget=4)
    new.restore(program_from_fields("p", meta, calls, WALL + clock.now() + 5, 50.0))
    assert new.program("p", "acme").conversation is conversation
    new.complete("p", "a")  # its running call ends: a conversation no longer counts
    if conversation:
        new.register_program("q", "acme", max_open=1)
    else:
        with pytest.raises(Overloaded):
            new.register_program("q", "acme", max_open=1)


def test_a_restored_program_keeps_the_registration_that_opened_it() -> None:
    """A registration retried after a restart (its first answer lost) is known as the one
    that opened the program (planner/service.py `_register`)."""
    clock = ManualClock()
    old = make_core(clock)
    old.register_program("p", "acme", registration="r1")
    meta, calls = persist(old, clock)
    new = make_core(ManualClock(start=50.0))
    new.restore(program_from_fields("p", meta, calls, WALL + clock.now() + 5, 50.0))
    assert new.program("p", "acme").registration == "r1"


@pytest.mark.parametrize("declared", [True, False])
def test_a_restored_program_stays_declared_or_not(declared: bool) -> None:
    """A declared DAG's program is expired on its own idle TTL after a restart too."""
    clock = ManualClock()
    old = make_core(clock)
    old.register_program("p", "acme", declared=declared)
    meta, calls = persist(old, clock)
    new = make_core(ManualClock(start=50.0))
    new.restore(program_from_fields("p", meta, calls, WALL + clock.now() + 5, 50.0))
    assert new.program("p", "acme").declared is declared


def test_a_call_started_early_and_waiting_stays_so_through_a_restart() -> None:
    """Its early run's report, replayed to the restarted planner, does not end it (it
    would be answered ALREADY_EXISTS when its gateway admits it again: review 2026-12-07)."""
    clock = ManualClock()
    old = make_core(clock, budget=1)
    old.register_program("p", "acme")
    old.submit("p", "acme", "busy")
    old.dispatch()
    old.submit("p", "acme", "c", started_on="w0", started_priority=20)  # w0 is full: c waits
    assert old.dispatch() == []
    meta, calls = persist(old, clock)
    new = make_core(ManualClock(start=50.0), budget=1)
    new.restore(program_from_fields("p", meta, calls, WALL + clock.now() + 5, 50.0))
    restored = new.program("p", "acme").calls["c"]
    assert (restored.started_on, restored.started_priority) == ("w0", 20)
    with pytest.raises(NoSuchCall):
        new.complete("p", "c", attempt=1, worker_id="w0")
    again = new.submit("p", "acme", "c", started_on="w0")  # its gateway's re-admission
    assert again.state is CallState.QUEUED and again.started_on == "w0"


def _restored_early_start() -> PlannerCore:
    """c, started early on w0 (its admission saved), granted before the planner died, the
    grant not saved: the restarted planner has c waiting, started_on w0, attempt 1."""
    clock = ManualClock()
    old = make_core(clock, workers=2)
    old.register_program("p", "acme")
    old.submit("p", "acme", "c", started_on="w0")
    meta, calls = persist(old, clock)
    new = make_core(ManualClock(start=50.0), workers=2)
    new.restore(program_from_fields("p", meta, calls, WALL + clock.now() + 5, 50.0))
    return new


@pytest.mark.parametrize(("reports", "attempt"), [
    # granted on w0: its gateway's report (the early worker's shows nothing)
    ([("w0", 1, False, False), ("w0", 1, True, True)], 1),
    # granted on w1: the early run's cut and w1's run (attempt 2), either reporter
    ([("w0", 1, False, False), ("w1", 2, False, True)], 2),
    ([("w1", 2, True, True)], 2),
    # granted on w0 at another priority than the early run's: run again there as attempt 2
    ([("w0", 2, False, True)], 2),
    ([("w0", 2, True, True)], 2),
    ([("w0", 1, False, False), ("w1", 3, False, False)], 0),  # no grant made these
])
def test_a_restored_early_start_takes_where_it_ran_from_a_report(
        reports: list[tuple[str, int, bool, bool]], attempt: int) -> None:
    """Each report: (worker, attempt, its gateway's, counts). Without this the call stayed
    an orphan, its answer given, until orphan_ttl_s cancelled it (review 2026-12-07)."""
    core = _restored_early_start()
    for worker, n, granted, counts in reports:
        if counts:
            done = core.complete("p", "c", attempt=n, worker_id=worker, granted=granted)
            assert (done.state, done.attempt, done.started_on) == (CallState.DONE, attempt, "")
        else:
            with pytest.raises(NoSuchCall):
                core.complete("p", "c", attempt=n, worker_id=worker, granted=granted)
    if not attempt:
        call = core.program("p", "acme").calls["c"]
        assert (call.state, call.attempt, call.started_on) == (CallState.QUEUED, 1, "w0")


def test_a_restored_call_retried_after_a_lost_grants_attempt_failed_runs_the_attempt_after() -> None:
    """Its early start on w0 was granted on w1 as attempt 2 (lost with the planner), which
    failed: the gateway admits attempt 3, not 1 again, whose number the cut early run's
    reports carry (review 2026-12-07)."""
    core = _restored_early_start()
    again = core.submit("p", "acme", "c", retry_of_attempt=2, exclude_workers=["w1"])
    assert (again.attempt, again.started_on) == (3, "")
    [grant] = core.dispatch()
    assert (grant.worker_id, grant.attempt) == ("w0", 3)
    with pytest.raises(NoSuchCall):  # the early run, cut: of an attempt replaced
        core.complete("p", "c", state=CallState.CANCELLED, attempt=1, worker_id="w0")
