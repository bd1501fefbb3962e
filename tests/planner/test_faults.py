"""The planner core under faults: a call retried after its worker failed (its next
attempt, counted once), workers an attempt avoids, and unhealthy workers (pure, no I/O)."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, DuplicateCall, NoSuchCall, PlannerCore
from planner.core.selection import parse_policy
from planner.records import call_json, program_from_fields

WALL = 1_700_000_000.0


def make_core(workers: int = 2, budget: int = 1, policy: str = "fcfs+least_load",
              max_home_wait_s: float = 2.0) -> tuple[PlannerCore, ManualClock]:
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy), max_home_wait_s=max_home_wait_s)
    for i in range(workers):
        core.upsert_worker(f"w{i}", f"127.0.0.1:{9000 + i}", budget)
    core.register_program("p", "t")
    return core, clock


def running(core: PlannerCore, call_id: str = "a") -> tuple[str, int]:
    """(worker, attempt) of the call, which must be running."""
    call = core.program("p", "t").calls[call_id]
    assert call.state is CallState.RUNNING, call.state
    return call.worker_id, call.attempt


# ---- admitting the same call id again ---------------------------------------------------


def _queued(core: PlannerCore) -> None:
    core.upsert_worker("w0", "127.0.0.1:9000", 1, healthy=False)  # nowhere to start
    core.upsert_worker("w1", "127.0.0.1:9001", 1, healthy=False)
    core.submit("p", "t", "a")


def _running(core: PlannerCore) -> None:
    core.submit("p", "t", "a")
    core.dispatch()


def _ended(state: CallState):  # type: ignore[no-untyped-def]
    def setup(core: PlannerCore) -> None:
        _running(core)
        core.complete("p", "a", state=state)
    return setup


@pytest.mark.parametrize(("setup", "retry_of_attempt", "outcome"), [
    # the gateway saw attempt 1 fail: attempt 2, wherever attempt 1 was
    (_running, 1, 2),
    (_queued, 1, 2),
    (_ended(CallState.FAILED), 1, 2),
    (_ended(CallState.CANCELLED), 1, 2),
    # a client admitting a call again whose last attempt failed or was cancelled
    (_ended(CallState.FAILED), 0, 2),
    (_ended(CallState.CANCELLED), 0, 2),
    # a finished call, a call still live, or a retry of an attempt that is not the current
    (_ended(CallState.DONE), 0, DuplicateCall),
    (_ended(CallState.DONE), 1, DuplicateCall),
    (_running, 0, DuplicateCall),
    (_queued, 0, DuplicateCall),
    (_running, 2, DuplicateCall),
])
def test_admitting_a_call_id_again(setup, retry_of_attempt: int, outcome) -> None:  # type: ignore[no-untyped-def]
    core, _ = make_core()
    setup(core)
    if outcome is DuplicateCall:
        with pytest.raises(DuplicateCall):
            core.submit("p", "t", "a", retry_of_attempt=retry_of_attempt)
        return
    call = core.submit("p", "t", "a", retry_of_attempt=retry_of_attempt)
    assert call.attempt == outcome and call.state is CallState.QUEUED
    assert len(core.program("p", "t").calls) == 1


@pytest.mark.parametrize("setup", [
    _running, _queued, _ended(CallState.DONE), _ended(CallState.FAILED),
    _ended(CallState.CANCELLED),
])
def test_a_resend_runs_the_next_attempt_whatever_the_earlier_ones_state(setup) -> None:  # type: ignore[no-untyped-def]
    # The client never got the answer (its gateway died): even a done call runs again.
    core, _ = make_core()
    setup(core)
    call = core.submit("p", "t", "a", resend=True)
    assert call.attempt == 2 and call.state is CallState.QUEUED
    assert len(core.program("p", "t").calls) == 1 and core.queued == 1


def test_a_resend_does_not_avoid_the_worker_of_the_attempt_it_replaces() -> None:
    core, _ = make_core(workers=2, budget=1)
    core.submit("p", "t", "a")
    core.dispatch()
    worker, _ = running(core)
    core.submit("p", "t", "a", resend=True)  # that worker's slot is freed, not blamed
    core.dispatch()
    assert running(core) == (worker, 2)
    with pytest.raises(NoSuchCall):  # the replaced attempt's report changes nothing
        core.complete("p", "a", attempt=1)
    assert running(core) == (worker, 2)
    core.complete("p", "a", attempt=2)
    assert core.program("p", "t").calls["a"].state is CallState.DONE


def test_a_retry_of_a_queued_attempt_replaces_it_in_the_queue() -> None:
    core, _ = make_core()
    _queued(core)
    core.submit("p", "t", "a", retry_of_attempt=1)
    assert core.queued == 1
    core.upsert_worker("w0", "127.0.0.1:9000", 1)
    core.upsert_worker("w1", "127.0.0.1:9001", 1)
    assert [(g.call_id, g.attempt) for g in core.dispatch()] == [("a", 2)]  # once, not twice
    assert core.queued == 0 and sum(w.inflight for w in core.workers) == 1


def test_a_retry_frees_the_failed_attempts_slot_and_avoids_its_worker() -> None:
    core, _ = make_core(workers=2, budget=1)
    core.submit("p", "t", "a")
    [grant] = core.dispatch()
    assert grant.attempt == 1
    core.submit("p", "t", "a", retry_of_attempt=1)
    [retry] = core.dispatch()
    assert retry.attempt == 2 and retry.worker_id != grant.worker_id
    assert {w.worker_id: w.inflight for w in core.workers} == {grant.worker_id: 0,
                                                               retry.worker_id: 1}


@pytest.mark.parametrize(("report_attempt", "counted"), [
    (1, False),  # the failed attempt's late report (its worker survived its engine)
    (2, True),
    (0, True),  # a report without an attempt: whichever runs
])
def test_reports_of_a_replaced_attempt_are_ignored(report_attempt: int, counted: bool) -> None:
    core, _ = make_core()
    core.submit("p", "t", "a")
    core.dispatch()
    core.submit("p", "t", "a", retry_of_attempt=1)
    core.dispatch()
    if counted:
        core.complete("p", "a", service_s=1.0, completion_tokens=7, attempt=report_attempt)
        assert core.program("p", "t").calls["a"].state is CallState.DONE
    else:
        with pytest.raises(NoSuchCall):
            core.complete("p", "a", state=CallState.FAILED, attempt=report_attempt)
        assert running(core)[1] == 2


def test_a_retried_call_is_counted_once_and_its_children_wait_for_it() -> None:
    core, _ = make_core(workers=2, budget=2)
    core.submit("p", "t", "a")
    core.dispatch()
    child = core.submit("p", "t", "b", parents=["a"])
    core.submit("p", "t", "a", retry_of_attempt=1)  # attempt 1 failed: b stays blocked
    assert child.state is CallState.BLOCKED
    assert [g.call_id for g in core.dispatch()] == ["a"]
    with pytest.raises(NoSuchCall):  # attempt 1's late report: ignored
        core.complete("p", "a", attempt=1)
    assert child.state is CallState.BLOCKED
    core.complete("p", "a", attempt=2, completion_tokens=5)
    assert [g.call_id for g in core.dispatch()] == ["b"]
    core.complete("p", "b", attempt=1)
    calls = core.end_program("p", "t").calls.values()
    assert sorted((c.call_id, c.state.value, c.attempt) for c in calls) == [
        ("a", "done", 2), ("b", "done", 1)]


def test_a_cancelled_admission_of_an_old_attempt_leaves_the_retry_alone() -> None:
    core, _ = make_core()
    core.submit("p", "t", "a")
    core.dispatch()
    core.submit("p", "t", "a", retry_of_attempt=1)
    core.cancel("p", "a", attempt=1)
    assert core.program("p", "t").calls["a"].state is CallState.QUEUED
    core.cancel("p", "a", attempt=2)
    assert core.program("p", "t").calls["a"].state is CallState.CANCELLED


# ---- workers an attempt avoids ----------------------------------------------------------


@pytest.mark.parametrize(("free_others", "max_home_wait_s", "healthy_others", "expected"), [
    (True, 2.0, True, "w1"),  # another worker has room: there
    (False, 2.0, True, "parked"),  # only the failed one has room: wait for another ...
    (False, 0.0, True, "w0"),  # ... unless the planner never parks calls
    (True, 2.0, False, "w0"),  # no other healthy worker: the failed one, at once
])
def test_excluded_worker_is_avoided_while_another_can_take_the_call(
        free_others: bool, max_home_wait_s: float, healthy_others: bool, expected: str) -> None:
    core, clock = make_core(workers=2, budget=1, max_home_wait_s=max_home_wait_s)
    core.upsert_worker("w1", "127.0.0.1:9001", 1, healthy=healthy_others)
    if not free_others:  # w1 busy with another call
        core.upsert_worker("w0", "127.0.0.1:9000", 1, healthy=False)
        core.submit("p", "t", "busy")
        assert [g.worker_id for g in core.dispatch()] == ["w1"]
        core.upsert_worker("w0", "127.0.0.1:9000", 1)
    core.submit("p", "t", "a", exclude_workers=["w0"])
    grants = [g.worker_id for g in core.dispatch() if g.call_id == "a"]
    if expected == "parked":
        assert grants == [] and core.parked_counts() == {("w1", "t"): 1}
        clock.advance(max_home_wait_s)  # waited its turn: now anywhere
        assert [g.worker_id for g in core.dispatch()] == ["w0"]
    else:
        assert grants == [expected]


def test_a_parked_call_of_an_excluded_worker_goes_to_the_other_when_it_frees() -> None:
    core, _ = make_core(workers=2, budget=1)
    core.upsert_worker("w0", "127.0.0.1:9000", 1, healthy=False)
    core.submit("p", "t", "busy")
    core.dispatch()  # on w1
    core.upsert_worker("w0", "127.0.0.1:9000", 1)
    core.submit("p", "t", "a", exclude_workers=["w0"])
    assert core.dispatch() == []
    core.complete("p", "busy")
    assert [(g.call_id, g.worker_id) for g in core.dispatch()] == [("a", "w1")]


# ---- unhealthy workers ------------------------------------------------------------------


def test_unhealthy_worker_gets_no_calls_until_it_recovers() -> None:
    core, _ = make_core(workers=2, budget=2)
    core.submit("p", "t", "r")
    core.dispatch()
    on = running(core, "r")[0]
    core.upsert_worker(on, "addr", 2, healthy=False)
    for name in "abc":
        core.submit("p", "t", name)
    other = "w1" if on == "w0" else "w0"
    assert {g.worker_id for g in core.dispatch()} == {other}  # 2 of 3: the other's budget
    assert running(core, "r")[0] == on  # its running call goes on, and still counts
    assert core.worker(on).inflight == 1  # type: ignore[union-attr]
    core.upsert_worker(on, "addr", 2, healthy=True)
    assert [g.worker_id for g in core.dispatch()] == [on]


def test_calls_parked_on_a_worker_that_turns_unhealthy_go_back_to_the_queue() -> None:
    core, _ = make_core(workers=2, budget=1, policy="fcfs+affinity")
    core.submit("p", "t", "a")
    [first] = core.dispatch()
    core.complete("p", "a")
    core.submit("p", "t", "hog")  # fills a's worker (its home for b) ...
    core.upsert_worker("w1" if first.worker_id == "w0" else "w0", "x", 1, healthy=False)
    assert [g.worker_id for g in core.dispatch()] == [first.worker_id]
    core.upsert_worker("w1" if first.worker_id == "w0" else "w0", "x", 1)
    core.submit("p", "t", "b", parents=["a"])
    assert core.dispatch() == [] and core.queued == 1  # ... so b waits for its home
    core.upsert_worker(first.worker_id, "addr", 1, healthy=False)
    assert [g.call_id for g in core.dispatch()] == ["b"]  # released, started elsewhere


# ---- persisted attempts -----------------------------------------------------------------


def test_attempt_and_avoided_workers_survive_a_planner_restart() -> None:
    core, clock = make_core()
    core.submit("p", "t", "a")
    core.dispatch()
    core.submit("p", "t", "a", retry_of_attempt=1)
    core.dispatch()
    call = core.program("p", "t").calls["a"]
    raw = call_json(call, WALL + clock.now(), clock.now())
    meta = {"tenant": "t", "created_wall": f"{WALL:.6f}"}
    restored = program_from_fields("p", meta, {"a": raw}, WALL + clock.now(), 0.0).calls["a"]
    assert (restored.attempt, restored.excluded, restored.state) == (
        2, call.excluded, CallState.RUNNING)
    assert restored.excluded and restored.worker_id not in restored.excluded


@pytest.mark.parametrize("policy", ["fcfs+least_load", "default"])
def test_a_queue_never_counts_below_zero_however_calls_come_and_go(policy: str) -> None:
    # the soak once drove the global queue's length negative (ValueError on every Admit):
    # resends, retries, cancellations, completions, cache answers and sick workers in any
    # order keep it exact
    import random

    rng = random.Random(7)
    core, clock = make_core(workers=2, budget=1, policy=policy)
    ids = [f"c{i}" for i in range(6)]
    ops = ["submit", "resend", "retry", "cached", "cancel", "complete", "fail", "dispatch",
           "dispatch", "sick", "well", "reconcile"]
    for step in range(4000):
        call_id = rng.choice(ids)
        op = rng.choice(ops)
        calls = core.program("p", "t").calls
        try:
            if op == "submit":
                core.submit("p", "t", call_id, parents=[p for p in rng.sample(ids, 1)
                                                        if p in calls and p != call_id])
            elif op == "resend":
                core.submit("p", "t", call_id, resend=True)
            elif op == "retry" and call_id in calls:
                c = calls[call_id]
                core.submit("p", "t", call_id, retry_of_attempt=c.attempt,
                            exclude_workers=[c.worker_id] if c.worker_id else [])
            elif op == "cached":
                core.submit("p", "t", call_id, served_from_cache=True, resend=rng.random() < 0.5)
            elif op == "cancel":
                core.cancel("p", call_id)
            elif op in ("complete", "fail"):
                core.complete("p", call_id, state=CallState.DONE if op == "complete"
                              else CallState.FAILED, attempt=rng.choice([0, 1, 2]))
            elif op in ("sick", "well"):
                core.upsert_worker(rng.choice(["w0", "w1"]), "127.0.0.1:9000", 1,
                                   healthy=op == "well")
            elif op == "reconcile":
                clock.advance(11)
                core.reconcile_worker(rng.choice(["w0", "w1"]), set())
            else:
                core.dispatch()
        except (DuplicateCall, NoSuchCall):
            pass
        clock.advance(0.01)
        live = [c for c in core.program("p", "t").calls.values() if c.state is CallState.QUEUED]
        assert 0 <= core.queued <= len(live), (step, op, call_id)


@pytest.mark.parametrize("again", [{"retry_of_attempt": 1}, {"resend": True}])
def test_an_attempt_again_keeps_the_parents_it_was_first_admitted_with(again: dict) -> None:
    """A retry naming other parents (here: a call that waits on it) made a cycle, both
    blocked for good with the workers idle (stateful review U1)."""
    core, _ = make_core(workers=1)
    core.submit("p", "t", "a")
    core.submit("p", "t", "b", parents=["a"])  # b waits on a
    retried = core.submit("p", "t", "a", parents=["b"], **again)
    assert retried.parents == () and retried.state is CallState.QUEUED
    (grant,) = core.dispatch()
    assert grant.call_id == "a"
