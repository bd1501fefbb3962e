"""Calls parked on their home worker (planner/core/parking.py), alone and in the planner."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.model import CallRecord, CallState
from planner.core.parking import ParkedCalls
from planner.core.queue import GLOBAL, MultiLevelQueue
from planner.core.selection import parse_policy


def call(cid: str, score: float = 0.0, arrival: float = 0.0, tenant: str = "t") -> CallRecord:
    c = CallRecord("p", cid, tenant, "", (), 10, 4, arrival)
    c.score = score
    return c


def parking(max_wait_s: float = 2.0) -> tuple[ParkedCalls, MultiLevelQueue]:
    queue = MultiLevelQueue((1.0, 4.0))
    return ParkedCalls(max_wait_s, queue), queue


def test_a_worker_takes_its_parked_calls_in_queue_order_and_no_others() -> None:
    parked, queue = parking()
    for c in (call("late", 5.0, 0.0), call("soon", 0.5, 1.0), call("tie", 0.5, 2.0)):
        parked.park(c, "w0", now=0.0)
    parked.park(call("elsewhere"), "w1", now=0.0)
    got = [queue.pop(0.0, lanes=(GLOBAL, "w0")) for _ in range(4)]
    assert [c.call_id if c else None for c in got] == ["soon", "tie", "late", None]
    assert len(queue) == 1 and queue.size_of("t", "w1") == 1


def test_calls_parked_too_long_are_released_once_and_never_parked_again() -> None:
    parked, queue = parking()
    a, b = call("a"), call("b")
    parked.park(a, "w0", now=0.0)
    parked.park(b, "w0", now=1.0)
    assert parked.release_expired(1.99) == []
    assert parked.release_expired(2.0) == [a]
    assert not parked.may_park(a) and parked.may_park(b)
    assert queue.size_of("t", "w0") == 1 and a.lane == GLOBAL  # a left w0's lane, for the
    assert queue.size_of("t", GLOBAL) == 1  # global one
    assert queue.pop(2.0, lanes=("w0",)) is b and queue.pop(2.0, lanes=("w1",)) is None
    assert queue.pop(2.0, lanes=(GLOBAL, "w1")) is a
    parked.forget(a)  # dispatched: a later call of the same key may park again
    assert parked.may_park(a)


@pytest.mark.parametrize(("level_score", "queued_at", "now", "released"), [
    (2.0, 5.0, 5.0, ["a"]),  # level 1 passed a (level 0, queued at 0, parked 2 s+): a goes
    (0.5, 5.0, 5.0, ["a"]),  # level 0 too
    (2.0, 1.5, 5.0, []),  # queued only 1.5 s after a: a stays
    (2.0, 5.0, 1.9, []),  # a has not been parked 2 s
])
def test_calls_passed_by_a_later_call_of_their_level_or_a_worse_one_are_released(
        level_score: float, queued_at: float, now: float, released: list[str]) -> None:
    """Thresholds (1, 4): a (score 0.5) is at level 0, b (score 5) at level 2; both parked
    at 0. A call of the level of `level_score` queued at `queued_at` starts at `now`."""
    parked, queue = parking()
    a, b = call("a", 0.5), call("b", 5.0)
    parked.park(a, "w0", now=0.0, since=0.0)
    parked.park(b, "w1", now=0.0, since=0.0)
    assert parked.expired(now) == (now >= 2.0)
    parked.passed(queue.level_of(level_score), queued_at)
    got = parked.release_due(now)
    assert [c.call_id for c in got] == released
    assert len(parked) == 2 - len(released) and parked.holds(b)


def test_calls_that_stopped_waiting_are_skipped_and_not_counted() -> None:
    parked, queue = parking()
    a, b = call("a"), call("b")
    parked.park(a, "w0", now=0.0)
    parked.park(b, "w0", now=0.0)
    a.state = CallState.CANCELLED
    queue.discard(a)
    parked.forget(a)
    assert len(parked) == 1 and queue.pop(0.0, lanes=("w0",)) is b
    parked.forget(b)
    assert parked.release_expired(10.0) == [] and not parked.waiting_on("w0")


def test_a_worker_that_leaves_releases_its_parked_calls() -> None:
    parked, queue = parking()
    a = call("a")
    parked.park(a, "w0", now=0.0)
    assert parked.release_worker("w0") == [a] and len(parked) == 0 and len(queue) == 0
    assert parked.release_worker("w0") == []


def test_zero_wait_never_parks_and_negative_is_refused() -> None:
    assert not parking(0.0)[0].may_park(call("a"))
    with pytest.raises(ValueError, match="max_wait_s"):
        parking(-1.0)


def test_counts_per_worker_and_tenant_follow_the_calls() -> None:
    parked, queue = parking()
    for c in (call("a1", tenant="a"), call("b1", tenant="b"), call("a2", tenant="a")):
        parked.park(c, "w0", now=0.0)
    assert (parked.count_on("w0", "a"), parked.count_on("w0", "b")) == (2, 1)
    assert parked.counts() == {("w0", "a"): 2, ("w0", "b"): 1} and parked.size_of("a") == 2
    taken = queue.pop(0.0, "a", lanes=("w0",))
    assert taken is not None
    parked.forget(taken)
    assert (parked.count_on("w0", "a"), parked.size_of("a"), set(parked.tenants())) == \
        (1, 1, {"a", "b"})


def planner_with_a_full_home() -> tuple[PlannerCore, ManualClock, str, str]:
    """Two workers of budget 1; p's c1 is parked on c0's worker, which q's call fills."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+affinity"), max_home_wait_s=5.0)
    core.upsert_worker("w0", "a0", 1)
    core.upsert_worker("w1", "a1", 1)
    core.register_program("p", "t")
    core.submit("p", "t", "c0")
    (g0,) = core.dispatch()
    core.complete("p", "c0", service_s=1.0)
    core.register_program("q", "t")
    core.program("q", "t").last_worker = g0.worker_id
    core.submit("q", "t", "x")
    core.dispatch()
    core.submit("p", "t", "c1", parents=["c0"])
    assert core.dispatch() == [] and core.queued == 1
    other = "w1" if g0.worker_id == "w0" else "w0"
    return core, clock, g0.worker_id, other


def test_a_parked_call_cancelled_by_its_client_is_gone() -> None:
    core, _, _, _ = planner_with_a_full_home()
    core.cancel("p", "c1")
    assert core.queued == 0
    core.complete("q", "x")
    assert core.dispatch() == []


def test_a_parked_call_whose_home_leaves_runs_elsewhere_at_once() -> None:
    core, _, home, other = planner_with_a_full_home()
    core.remove_worker(home)
    (g,) = core.dispatch()
    assert (g.call_id, g.worker_id) == ("c1", other)


def test_a_parked_call_of_an_ended_program_is_cancelled() -> None:
    core, _, _, _ = planner_with_a_full_home()
    core.end_program("p", "t")
    assert core.queued == 0


# ---- parked from when they are queued: a freed slot reads its worker's lane and the global one


def lanes_planner(max_home_wait_s: float = 10.0) -> tuple[PlannerCore, ManualClock]:
    """PLAS and affinity, two workers of budget 1. Programs `hp` (attained 0.5 s: level 1)
    and `lp` (attained 30 s: level 4) of tenant t, and `other` of tenant u (attained 0),
    each ran a first call on w0, their home; then `busy0` fills w0 and `busy1` w1."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+affinity"), max_home_wait_s=max_home_wait_s,
                       tenant_shares="off")
    core.upsert_worker("w0", "a0", 1)
    for pid, tenant, service_s in (("hp", "t", 0.5), ("lp", "t", 30.0), ("other", "u", 0.0)):
        core.register_program(pid, tenant)
        core.submit(pid, tenant, "root")
        assert [g.worker_id for g in core.dispatch()] == ["w0"]
        core.complete(pid, "root", service_s=service_s)
    core.register_program("busy", "t")
    core.submit("busy", "t", "busy0")
    core.dispatch()
    core.upsert_worker("w1", "a1", 1)
    core.submit("busy", "t", "busy1")
    assert [g.worker_id for g in core.dispatch()] == ["w1"]
    return core, clock


def granted(core: PlannerCore) -> list[tuple[str, str]]:
    return [(g.program_id, g.worker_id) for g in core.dispatch()]


@pytest.mark.parametrize(("before", "wait_s", "after", "frees", "expected"), [
    # hp's call waits on its full home and goes first when a slot there frees, before lp's
    # lower-priority call in the global lane (lp's call has no parent: no home)
    ([("hp", True), ("lp", False)], 0.0, [], "busy0", [("hp", "w0")]),
    # a slot elsewhere frees: the global call goes there; hp's call keeps waiting for home
    ([("hp", True), ("lp", False)], 0.0, [], "busy1", [("lp", "w1")]),
    # within the home's lane, priority order: hp (level 1) before lp (level 4)
    ([("lp", True), ("hp", True)], 0.0, [], "busy0", [("hp", "w0")]),
    # a lower level in the global lane goes before the parked call (priority across lanes)
    ([("hp", True)], 0.5, [("busy", False)], "busy0", [("busy", "w0")]),
    # ... unless the parked call waited past its starvation bound (4 x 0.5 s, at least 1 s)
    ([("hp", True)], 2.5, [("busy", False)], "busy0", [("hp", "w0")]),
    # parked on its full home max_home_wait_s (10 s), and a slot elsewhere would stay free:
    # released, the free worker runs it
    ([("hp", True)], 10.0, [], "busy1", [("hp", "w1")]),
    ([("hp", True)], 9.9, [], "busy1", []),
])
def test_a_freed_slot_takes_the_next_call_of_its_lane_and_the_global_one(
        before: list[tuple[str, bool]], wait_s: float, after: list[tuple[str, bool]],
        frees: str, expected: list[tuple[str, str]]) -> None:
    """Calls (program, with its first call as parent, i.e. parked on w0) come `before`
    `wait_s` passes and `after`; then the call `frees` completes, freeing its worker."""
    core, clock = lanes_planner()
    for i, (pid, parked) in enumerate(before):
        core.submit(pid, "t", f"b{i}", parents=["root"] if parked else [])
    assert core.dispatch() == []
    clock.advance(wait_s)
    for i, (pid, parked) in enumerate(after):
        core.submit(pid, "t", f"a{i}", parents=["root"] if parked else [])
    assert core.dispatch() == []
    core.complete("busy", frees, service_s=0.0)
    assert granted(core) == expected


def test_fair_share_orders_a_parked_call_and_a_global_one_of_another_tenant() -> None:
    """Tenant t attained more service than u since u came back: u's call in the global
    lane goes first on w0, ahead of t's call parked there, whatever their levels."""
    core, _ = lanes_planner()
    core.submit("other", "u", "e")  # global: u starts level with t (30.5 s, no credit)
    core.submit("hp", "t", "c", parents=["root"])  # parked on w0
    core.submit("lp", "t", "d")  # global
    assert core.dispatch() == []
    core.complete("busy", "busy0", service_s=10.0)  # t's: 40.5 s now
    assert granted(core) == [("other", "w0")]
    core.complete("other", "e", service_s=100.0)  # now u is ahead: t's calls go first
    assert granted(core) == [("hp", "w0")]


def test_a_freed_slot_leaves_the_calls_parked_on_other_workers_alone() -> None:
    core, _ = lanes_planner()
    core.submit("hp", "t", "c", parents=["root"])  # parked on w0
    before = core.calls_parked
    core.complete("busy", "busy1", service_s=0.0)  # w1 frees: nothing it may take
    assert granted(core) == [] and core.parked_counts() == {("w0", "t"): 1}
    assert core.calls_parked == before and core.queue_depths() == {}


@pytest.mark.parametrize(("lp_at", "freed_at", "then"), [
    # lp's call, queued 10 s after hp's, started elsewhere: hp's goes to the global lane at
    # the next dispatch, and w1 takes it before lp's next call (level 4)
    (10.0, 10.0, [("hp", "w1")]),
    # queued only 5 s after it: the queue has not moved on without it; it waits for w0
    (5.0, 10.0, [("lp", "w1")]),
    (9.9, 9.9, [("lp", "w1")]),  # hp's has not waited max_home_wait_s: it waits for w0
])
def test_a_parked_call_passed_by_a_call_queued_max_wait_after_it_may_run_anywhere(
        lp_at: float, freed_at: float, then: list[tuple[str, str]]) -> None:
    """hp's call (level 1) waits on its full home w0; lp's call (level 4, no home) starts
    on w1 when w1 frees. A call of the same or a worse level, queued max_home_wait_s (10 s)
    or more after the parked one, starting elsewhere, releases it to the global lane."""
    core, clock = lanes_planner()
    core.submit("hp", "t", "c", parents=["root"])
    clock.advance(lp_at)
    core.submit("lp", "t", "d")
    clock.advance(freed_at - lp_at)
    assert core.dispatch() == []
    core.complete("busy", "busy1", service_s=0.0)
    assert granted(core) == [("lp", "w1")]
    core.submit("lp", "t", "e")  # global, level 4
    core.complete("lp", "d", service_s=0.0)  # w1 frees again
    assert granted(core) == then


@pytest.mark.parametrize("budget", [1, 64])
def test_a_call_waiting_for_a_full_home_runs_elsewhere_after_max_home_wait(budget: int) -> None:
    """One tenant, two workers; w0 full, the call's home. After max_home_wait_s it runs on
    w1, whatever the budget: above the isolation budget (64 > 32) too, where a call held
    back by tenant isolation alone would stay home (tests/planner/
    test_tenant_shares_uncapped.py)."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+affinity"), max_home_wait_s=2.0)
    core.upsert_worker("w0", "a0", budget)
    core.register_program("p", "t")
    core.submit("p", "t", "c0")
    core.dispatch()
    for i in range(budget - 1):  # the rest of w0's budget
        core.register_program(f"f{i}", "t")
        core.submit(f"f{i}", "t", "x")
    assert len(core.dispatch()) == budget - 1
    core.complete("p", "c0", service_s=1.0)
    core.register_program("q", "t")
    core.submit("q", "t", "x")  # takes c0's slot on w0
    assert [g.worker_id for g in core.dispatch()] == ["w0"]
    core.upsert_worker("w1", "a1", budget)
    core.submit("p", "t", "c1", parents=["c0"])
    assert core.dispatch() == [] and core.queued == 1  # parked on w0, full
    clock.advance(3.0)
    assert [(g.call_id, g.worker_id) for g in core.dispatch()] == [("c1", "w1")]


@pytest.mark.parametrize(("policy", "max_home_wait_s"), [
    ("plas+affinity", 2.0), ("plas+affinity", 5.0), ("srpt+affinity", 2.0),
    ("atlas+affinity", 2.0),
])
def test_a_parked_call_runs_once_past_its_starvation_bound_while_its_home_stays_full(
        policy: str, max_home_wait_s: float) -> None:
    """Routing review 2026-12-06: P's call c1 (level 2 under plas: 2 s attained, a bound of
    8 s) parks on its home, held by a long call; a better-level call arrives every 0.5 s and
    runs 0.5 s on the other worker. None of them passes c1 by (they are of better levels),
    and only its home reads its lane: it stayed parked 120 s and more. Now it runs at the
    first decision max_home_wait_s past its bound (as it would behind calls of its own
    level), on the other worker."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy), max_home_wait_s=max_home_wait_s,
                       program_admission=False)
    core.upsert_worker("h", "a0", 1)
    core.register_program("P", "t")
    core.submit("P", "t", "c0")
    assert [g.worker_id for g in core.dispatch()] == ["h"]
    clock.advance(2.0)
    core.complete("P", "c0", service_s=2.0, completion_tokens=200)
    core.register_program("long", "u")
    core.submit("long", "u", "x")  # holds P's home
    assert [g.call_id for g in core.dispatch()] == ["x"]
    core.upsert_worker("w", "a1", 1)
    core.submit("P", "t", "c1", parents=["c0"])
    bound = core._queue.bound_s(core.program("P", "t").calls["c1"].score)
    assert core.dispatch() == []  # parked on h (w is free, but not its home)
    assert core.program("P", "t").calls["c1"].parked
    started, running, t0 = None, None, clock.now()
    for n in range(400):
        core.register_program(f"n{n}", "v")
        core.submit(f"n{n}", "v", "c")  # a new program: the best level
        if running is not None:
            core.complete(running, "c", service_s=0.5)
            running = None
        for grant in core.dispatch():
            if grant.call_id == "c1":
                started = (clock.now() - t0, grant.worker_id)
            else:
                running = grant.program_id
        if started:
            break
        clock.advance(0.5)
    assert started is not None, "c1 never ran"
    waited, worker = started
    late = bound + max_home_wait_s
    assert late <= waited <= late + 1.0 and worker == "w"
