"""Calls parked on their home worker (planner/core/parking.py), alone and in the planner."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.model import CallRecord, CallState
from planner.core.parking import ParkedCalls
from planner.core.selection import parse_policy


def call(cid: str, score: float = 0.0, arrival: float = 0.0) -> CallRecord:
    c = CallRecord("p", cid, "t", "", (), 10, 4, arrival)
    c.score = score
    return c


def test_a_worker_takes_its_best_parked_call_first() -> None:
    parked = ParkedCalls(max_wait_s=2.0)
    for c in (call("late", 5.0, 0.0), call("soon", 1.0, 1.0), call("tie", 1.0, 2.0)):
        parked.park(c, "w0", now=0.0)
    parked.park(call("elsewhere"), "w1", now=0.0)
    assert [parked.take("w0").call_id for _ in range(3)] == ["soon", "tie", "late"]  # type: ignore[union-attr]
    assert parked.take("w0") is None and len(parked) == 1


def test_calls_parked_too_long_are_released_once_and_never_parked_again() -> None:
    parked = ParkedCalls(max_wait_s=2.0)
    a, b = call("a"), call("b")
    parked.park(a, "w0", now=0.0)
    parked.park(b, "w0", now=1.0)
    assert parked.release_expired(1.99) == []
    assert parked.release_expired(2.0) == [a]
    assert not parked.may_park(a) and parked.may_park(b)
    assert parked.take("w0") is b and parked.take("w0") is None
    parked.forget(a)  # dispatched: a later call of the same key may park again
    assert parked.may_park(a)


def test_calls_that_stopped_waiting_are_skipped_and_not_counted() -> None:
    parked = ParkedCalls(max_wait_s=2.0)
    a, b = call("a"), call("b")
    parked.park(a, "w0", now=0.0)
    parked.park(b, "w0", now=0.0)
    a.state = CallState.CANCELLED
    parked.forget(a)
    assert len(parked) == 1 and parked.take("w0") is b
    assert parked.release_expired(10.0) == []


def test_a_worker_that_leaves_releases_its_parked_calls() -> None:
    parked = ParkedCalls(max_wait_s=2.0)
    a = call("a")
    parked.park(a, "w0", now=0.0)
    assert parked.release_worker("w0") == [a] and len(parked) == 0
    assert parked.release_worker("w0") == []


def test_zero_wait_never_parks_and_negative_is_refused() -> None:
    assert not ParkedCalls(0.0).may_park(call("a"))
    with pytest.raises(ValueError, match="max_wait_s"):
        ParkedCalls(-1.0)


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


def tcall(cid: str, tenant: str, score: float = 0.0) -> CallRecord:
    c = CallRecord(f"p{cid}", cid, tenant, "", (), 10, 4, 0.0)
    c.score = score
    return c


@pytest.mark.parametrize(
    ("allowed", "taken"),
    [
        (None, ["a1", "b1", "a2"]),  # best score first, whatever the tenant
        ({"a"}, ["a1", "a2"]),  # b held back by its share: skipped, not lost
        ({"b"}, ["b1"]),
        (set(), []),
    ],
)
def test_take_skips_tenants_held_back_and_counts_stay_exact(allowed: set[str] | None,
                                                            taken: list[str]) -> None:
    parked = ParkedCalls(max_wait_s=2.0)
    for c in (tcall("a1", "a", 1.0), tcall("b1", "b", 2.0), tcall("a2", "a", 3.0)):
        parked.park(c, "w0", now=0.0)
    assert (parked.count_on("w0", "a"), parked.count_on("w0", "b")) == (2, 1)
    check = None if allowed is None else allowed.__contains__
    got = []
    while (c := parked.take("w0", check)) is not None:
        got.append(c.call_id)
    assert got == taken
    left = {"a": 2, "b": 1}
    for cid in taken:
        left[cid[0]] -= 1
    assert {t: parked.count_on("w0", t) for t in "ab"} == left
    assert set(parked.tenants()) == {t for t, n in left.items() if n}
