"""The planner core: FCFS queue, round robin, admission budgets, dependencies, tenancy."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import (
    CallState,
    DuplicateCall,
    NoSuchCall,
    PlannerCore,
    ProgramClosed,
    UnknownParent,
    UnknownProgram,
)
from planner.core.routing import LeastLoad, RoundRobin
from planner.core.selection import parse_policy


def make_core(workers: int = 2, budget: int = 1, policy: str = "fcfs+round_robin"):
    clock = ManualClock()
    prio, route = parse_policy(policy)
    core = PlannerCore(clock, prio, route, worker_ttl_s=10, program_idle_ttl_s=100)
    for i in range(workers):
        core.upsert_worker(f"w{i}", f"127.0.0.1:{9000 + i}", budget)
    return core, clock


def test_fcfs_dispatches_in_arrival_order_and_respects_budget() -> None:
    core, clock = make_core(workers=1, budget=1)
    core.register_program("p", "t")
    for name in ["a", "b", "c"]:
        core.submit("p", "t", name)
        clock.advance(1)
    assert [g.call_id for g in core.dispatch()] == ["a"]
    assert core.dispatch() == []  # budget full
    core.complete("p", "a", service_s=1.0)
    grants = core.dispatch()
    assert [g.call_id for g in grants] == ["b"]
    assert grants[0].queued_s == pytest.approx(2.0)  # b arrived at t=1, dispatched at t=3


@pytest.mark.parametrize(
    ("routing", "budgets", "expected"),
    [
        ("round_robin", [2, 2], ["w0", "w1", "w0", "w1"]),
        ("round_robin", [1, 3], ["w0", "w1", "w1", "w1"]),
        ("least_load", [2, 2], ["w0", "w1", "w0", "w1"]),
        ("least_load", [1, 4], ["w0", "w1", "w1", "w1"]),
    ],
)
def test_routing_table(routing: str, budgets: list[int], expected: list[str]) -> None:
    core, _ = make_core(workers=0, policy=f"fcfs+{routing}")
    for i, b in enumerate(budgets):
        core.upsert_worker(f"w{i}", f"addr{i}", b)
    core.register_program("p", "t")
    for i in range(len(expected)):
        core.submit("p", "t", f"c{i}")
    assert [g.worker_id for g in core.dispatch()] == expected


def test_round_robin_and_least_load_need_candidates() -> None:
    for policy in (RoundRobin(), LeastLoad()):
        with pytest.raises(ValueError):
            policy.choose(None, None, [], [])  # type: ignore[arg-type]


def test_dependent_call_waits_for_its_parents() -> None:
    core, _ = make_core(workers=2, budget=4)
    core.register_program("p", "t")
    core.submit("p", "t", "a")
    core.submit("p", "t", "b")
    join = core.submit("p", "t", "join", parents=["a", "b"])
    assert join.state is CallState.BLOCKED
    assert {g.call_id for g in core.dispatch()} == {"a", "b"}
    core.complete("p", "a")
    assert core.dispatch() == []
    core.complete("p", "b")
    assert [g.call_id for g in core.dispatch()] == ["join"]


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (lambda c: c.submit("nope", "t", "x"), UnknownProgram),
        (lambda c: c.submit("p", "other-tenant", "x"), UnknownProgram),
        (lambda c: c.submit("p", "t", "x", parents=["ghost"]), UnknownParent),
        (lambda c: (c.submit("p", "t", "x"), c.submit("p", "t", "x")), DuplicateCall),
        (lambda c: c.complete("p", "never"), NoSuchCall),
        (lambda c: c.end_program("p", "other-tenant"), UnknownProgram),
        (lambda c: c.register_program("p", "other-tenant"), DuplicateCall),
    ],
)
def test_errors(action, error) -> None:  # type: ignore[no-untyped-def]
    core, _ = make_core()
    core.register_program("p", "t")
    with pytest.raises(error):
        action(core)


def test_closed_program_rejects_calls() -> None:
    core, _ = make_core()
    program = core.register_program("p", "t")
    program.closed = True
    with pytest.raises(ProgramClosed):
        core.submit("p", "t", "x")


def test_cancel_queued_and_running_calls_frees_budget() -> None:
    core, _ = make_core(workers=1, budget=1)
    core.register_program("p", "t")
    core.submit("p", "t", "a")
    core.submit("p", "t", "b")
    core.submit("p", "t", "c")
    assert [g.call_id for g in core.dispatch()] == ["a"]
    core.cancel("p", "b")  # queued: dropped
    core.cancel("p", "a")  # running: the worker slot is freed
    assert [g.call_id for g in core.dispatch()] == ["c"]
    assert core.workers[0].inflight == 1


def test_repeated_completion_is_rejected_not_double_counted() -> None:
    core, clock = make_core()
    core.register_program("p", "t")
    core.submit("p", "t", "a")
    core.dispatch()
    clock.advance(2.0)
    core.complete("p", "a", service_s=2.0)
    with pytest.raises(NoSuchCall):
        core.complete("p", "a", service_s=2.0)
    assert core.program("p", "t").attained_service_s == 2.0
    assert all(w.inflight == 0 for w in core.workers)


def test_end_program_cancels_waiting_calls_and_emits_events() -> None:
    core, _ = make_core(workers=1, budget=1)
    core.register_program("p", "t")
    core.submit("p", "t", "a")
    core.submit("p", "t", "b")
    core.dispatch()
    core.take_events()
    program = core.end_program("p", "t")
    assert program.calls["b"].state is CallState.CANCELLED
    kinds = [type(e).__name__ for e in core.take_events()]
    assert kinds == ["CallChanged", "ProgramEnded"]
    with pytest.raises(UnknownProgram):
        core.program("p", "t")


def test_expire_drops_silent_workers_and_idle_programs() -> None:
    core, clock = make_core(workers=2)
    core.register_program("idle", "t")
    core.register_program("busy", "t")
    core.submit("busy", "t", "x")
    core.dispatch()
    clock.advance(11)
    core.upsert_worker("w0", "addr", 1)  # w0 heartbeats; w1 does not
    assert core.expire() == []
    assert [w.worker_id for w in core.workers] == ["w0"]
    clock.advance(100)
    core.upsert_worker("w0", "addr", 1)
    assert core.expire() == ["idle"]  # busy has a running call


@pytest.mark.parametrize("spec", ["", "fcfs", "fcfs+nope", "nope+round_robin", "plas+", "clairvoyant+"])
def test_unknown_policy_is_rejected_with_the_options(spec: str) -> None:
    with pytest.raises(ValueError, match="expected <priority>"):
        parse_policy(spec)


def test_progress_refines_the_running_calls_estimate() -> None:
    core, _ = make_core(workers=1, budget=1)
    for _ in range(10):  # the class's history: short calls
        core.estimator.observe("", 20)
    core.register_program("p", "t")
    call = core.submit("p", "t", "a", max_new_tokens=4000)
    assert call.expected_output == 20
    with pytest.raises(NoSuchCall):  # not running yet
        core.progress("p", "a", 5)
    core.dispatch()
    assert core.progress("p", "a", 10).expected_output == 20
    assert call.remaining_output == 10
    core.progress("p", "a", 64)  # it outlived every call of its class: conservative again
    assert call.expected_output == 512 and call.remaining_output == 448
    core.progress("p", "a", 30)  # a late, reordered report changes nothing
    assert call.generated_tokens == 64
    core.complete("p", "a", completion_tokens=70)
    assert call.remaining_output == 0
    with pytest.raises(NoSuchCall):
        core.progress("p", "a", 80)


def test_a_call_served_from_the_gateway_cache_is_recorded_done_and_can_be_a_parent() -> None:
    core, _ = make_core(workers=1, budget=1)
    core.register_program("p", "t")
    cached = core.submit("p", "t", "a", served_from_cache=True)
    assert cached.state is CallState.DONE and core.queued == 0
    child = core.submit("p", "t", "b", parents=["a"])
    assert child.state is CallState.QUEUED  # its parent is already done
    assert [g.call_id for g in core.dispatch()] == ["b"]


@pytest.mark.parametrize(("declared", "idle_s", "expired"), [
    (True, 59, False), (True, 61, True),  # a declared DAG's: declared_idle_ttl_s (60 s)
    (False, 61, False), (False, 101, True),  # an interactive one's: program_idle_ttl_s
])
def test_a_declared_program_is_expired_once_idle_its_own_ttl(declared: bool, idle_s: float,
                                                            expired: bool) -> None:
    """SDK review 2026-12-06: a DAG whose gateway died mid-run stayed open (its id refused
    ALREADY_EXISTS to the run again) for program_idle_ttl_s; no caller can end it."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), program_idle_ttl_s=100,
                       declared_idle_ttl_s=60)
    core.upsert_worker("w0", "addr", 1)
    core.register_program("dag", "t", declared=declared)
    core.submit("dag", "t", "n0")
    core.dispatch()
    core.complete("dag", "n0")
    clock.advance(idle_s)
    core.upsert_worker("w0", "addr", 1)  # (heard from: not expired itself)
    assert core.expire() == (["dag"] if expired else [])
