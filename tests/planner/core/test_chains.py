"""ATLAS's critical paths (planner/core/chains.py): a call continues its parents, or its
thread's previous call when it names none; a continued call that still runs adds its
service once it ends. Pure, clock-injected, table-driven."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.model import CallChanged, CallState, ProgramRegistered
from planner.core.selection import parse_policy
from planner.records import call_json, program_fields, program_from_fields
from tests.planner.test_policies import core_with


def _c1_ran_3_s(core: PlannerCore, clock: ManualClock) -> None:
    """Program p of tenant t: its call c1 (thread main) ran 3 s."""
    core.register_program("p", "t")
    core.submit("p", "t", "c1")
    core.dispatch()
    clock.advance(3.0)
    core.complete("p", "c1", service_s=3.0)


@pytest.mark.parametrize("policy", ["plas", "atlas"])
def test_a_single_threaded_program_naming_no_parents_is_charged_its_chain(policy: str) -> None:
    """An interactive program (a ReAct loop through the SDK) sends its calls one after
    another on one thread, naming no parents: ATLAS equals PLAS there (Autellix), the
    second call charged the first's 3 s (a review found ATLAS scored each 0)."""
    core, clock = core_with(f"{policy}+least_load")
    _c1_ran_3_s(core, clock)
    assert core.submit("p", "t", "c2").score == pytest.approx(3.0)


@pytest.mark.parametrize(("thread", "parents", "score"), [
    ("main", (), 3.0),  # continues main's c1
    ("b", (), 0.0),  # a new thread (a parallel branch): not charged for main's
    ("b", ("c1",), 3.0),  # named parents win
])
def test_atlas_continues_the_thread_only_where_no_parent_is_named(
        thread: str, parents: tuple[str, ...], score: float) -> None:
    core, clock = core_with("atlas+least_load")
    _c1_ran_3_s(core, clock)
    assert core.submit("p", "t", "c2", thread_id=thread, parents=parents).score == score


@pytest.mark.parametrize("conversation", [True, False])
def test_a_continued_call_still_running_adds_its_service_when_it_ends(
        conversation: bool) -> None:
    """A conversation's turn does not wait for a parent still running (its report may be in
    a gateway's batch), nor a call for its thread's previous one: that call's service,
    reported after, still counts on the chain (a review found each turn started it again)."""
    core, clock = core_with("atlas+least_load", budget=4)
    core.register_program("c", "t", conversation=conversation)
    core.submit("c", "t", "turn1")
    core.dispatch()
    clock.advance(5.0)
    parents = ["turn1"] if conversation else []
    core.submit("c", "t", "turn2", parents=parents)  # turn1's report still to come
    core.complete("c", "turn1", service_s=5.0)
    core.dispatch()
    clock.advance(1.0)
    core.complete("c", "turn2", service_s=1.0)
    turn3 = core.submit("c", "t", "turn3", parents=["turn2"] if conversation else [])
    assert turn3.score == pytest.approx(6.0)


@pytest.mark.parametrize("tail_state", ["queued", "blocked"])
def test_a_call_continuing_a_thread_tail_not_yet_running_adds_its_service_when_it_ends(
        tail_state: str) -> None:
    """c2 names no parents and continues c1, its thread's latest call, not yet running
    (queued for a slot, or blocked on another thread's call): c1's service, known when it
    ends, counts on c2's chain all the same (filed under running tails alone, it did not)."""
    core, clock = core_with("atlas+least_load", budget=1)
    core.register_program("p", "t")
    core.submit("p", "t", "b", thread_id="side")
    core.dispatch()  # b holds the one slot
    c1 = core.submit("p", "t", "c1", parents=["b"] if tail_state == "blocked" else [])
    assert c1.state is (CallState.BLOCKED if tail_state == "blocked" else CallState.QUEUED)
    core.submit("p", "t", "c2")  # continues c1
    core.complete("p", "b", service_s=0.0)
    core.dispatch()
    clock.advance(3.0)
    core.complete("p", "c1", service_s=3.0)
    core.dispatch()
    clock.advance(1.0)
    core.complete("p", "c2", service_s=1.0)
    assert core.submit("p", "t", "c3").score == pytest.approx(4.0)


def test_a_retry_keeps_the_chain_of_its_first_attempt() -> None:
    core, clock = core_with("atlas+least_load", budget=4)
    _c1_ran_3_s(core, clock)
    core.submit("p", "t", "c2")
    core.dispatch()
    core.submit("p", "t", "c3", thread_id="main")  # the thread's tail is now c3
    retried = core.submit("p", "t", "c2", retry_of_attempt=1)
    assert (retried.attempt, retried.score) == (2, pytest.approx(3.0))


# (review of this series: a retry, a resend answered from the cache, a restore)
def test_a_retry_does_not_make_an_older_call_the_threads_tail_again() -> None:
    """c1 (3 s) done; c2 runs; c3 (same thread, no parents) continues c2. c2's worker fails
    and c2 is retried: c3 is still the latest call of the thread, so c4 must continue c3
    (3 + 1 + 5 = 9 s), not c2 (4 s)."""
    core, clock = core_with("atlas+least_load", budget=4)
    _c1_ran_3_s(core, clock)
    core.submit("p", "t", "c2")
    core.dispatch()
    core.submit("p", "t", "c3")  # continues c2 (running)
    core.dispatch()
    core.submit("p", "t", "c2", retry_of_attempt=1)  # c2's attempt 1 failed on its worker
    core.dispatch()
    clock.advance(1.0)
    core.complete("p", "c2", service_s=1.0, attempt=2)
    clock.advance(5.0)
    core.complete("p", "c3", service_s=5.0)
    c4 = core.submit("p", "t", "c4")
    assert core.program("p", "t").thread_tails["main"] == "c4"
    assert c4.score == pytest.approx(9.0)


def test_a_resend_served_from_cache_releases_the_children_blocked_on_it() -> None:
    """A (running, its gateway gone) is resent by its client and answered from the cache:
    A is DONE, so B, blocked on A, must be queued (it stays BLOCKED forever, and
    _waiting_on keeps A's entry)."""
    core, clock = core_with("atlas+least_load", budget=4)
    core.register_program("p", "t")
    core.submit("p", "t", "A")
    core.dispatch()
    b = core.submit("p", "t", "B", parents=["A"])
    assert b.state is CallState.BLOCKED
    clock.advance(2.0)
    a = core.submit("p", "t", "A", resend=True, served_from_cache=True)
    assert a.state is CallState.DONE
    assert core.program("p", "t").calls["B"].state is CallState.QUEUED
    assert "p/A" not in core._waiting_on


def test_a_resend_served_from_cache_leaves_no_waiting_on_entry_for_a_conversation() -> None:
    """Conversation: turn2 continues turn1 (running, not waited for); turn1 resent and
    served from the cache: nothing must stay filed under turn1 (memory per call)."""
    core, _ = core_with("atlas+least_load", budget=4)
    core.register_program("c", "t", conversation=True)
    core.submit("c", "t", "turn1")
    core.dispatch()
    core.submit("c", "t", "turn2", parents=["turn1"])
    core.submit("c", "t", "turn1", resend=True, served_from_cache=True)
    core.dispatch()
    core.complete("c", "turn2", service_s=0.5)
    core.end_program("c", "t")
    assert core._waiting_on == {}


WALL = 1_700_000_000.0
N = 20


def _old_program() -> tuple[dict[str, str], dict[str, str], ManualClock]:
    clock = ManualClock()
    old = PlannerCore(clock, *parse_policy("atlas+least_load"))
    old.upsert_worker("w0", "a0", 1)
    old.register_program("p", "t")
    for i in range(1, N + 1):  # one thread, naming no parents: a chain of N 1-s calls
        old.submit("p", "t", f"c{i}")
        old.dispatch()
        clock.advance(1.0)
        old.complete("p", f"c{i}", service_s=1.0)
    meta: dict[str, str] = {}
    calls: dict[str, str] = {}
    for event in old.take_events():
        if isinstance(event, ProgramRegistered):
            meta = program_fields(event.program, WALL + clock.now(), clock.now())
        elif isinstance(event, CallChanged):
            calls[event.call.call_id] = call_json(event.call, WALL + clock.now(), clock.now())
    return meta, calls, clock


def _restored_next_score(meta: dict[str, str], calls: dict[str, str], clock: ManualClock) -> float:
    new_clock = ManualClock(start=50.0)
    program = program_from_fields("p", meta, calls, WALL + clock.now() + 5, new_clock.now())
    new = PlannerCore(new_clock, *parse_policy("atlas+least_load"))
    new.upsert_worker("w0", "a0", 1)
    new.restore(program)
    return new.submit("p", "t", "next").score


def test_restore_finds_the_thread_tail_whatever_the_records_order() -> None:
    meta, calls, clock = _old_program()
    reordered = dict(sorted(calls.items()))  # c1, c10, c11, ..., c2, c20, c3, ... (any order)
    assert _restored_next_score(meta, reordered, clock) == pytest.approx(float(N))


def test_a_restored_program_continues_its_threads_latest_call_whatever_the_order() -> None:
    """A restarted planner reads a program's calls from a Redis hash (HGETALL: no order):
    the thread's latest call is the one that came last, not the one read last."""
    meta, calls, clock = _old_program()
    reordered = dict(sorted(calls.items()))  # c1, c10, c11, ..., c2, c20, c3, ...
    assert _restored_next_score(meta, reordered, clock) == pytest.approx(float(N))
