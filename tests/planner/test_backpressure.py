"""Backpressure in the planner core: bounded queues (overall and per tenant) and a tenant's
limit on open programs refuse at once (Overloaded), and never a call already admitted."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import Overloaded, PlannerCore
from planner.core.selection import parse_policy


def make_core(max_queued: int = 0, per_tenant: int = 0) -> PlannerCore:
    priority, routing = parse_policy("fcfs+round_robin")
    core = PlannerCore(ManualClock(), priority, routing, max_queued=max_queued,
                       max_queued_per_tenant=per_tenant)
    core.upsert_worker("w0", "addr", 1)  # one slot: the first call runs, the rest wait
    return core


def submit_all(core: PlannerCore, calls: list[tuple[str, str]]) -> list[str]:
    """Submits (tenant, call) pairs, each tenant in its own program; the outcome of each."""
    out = []
    for tenant, call in calls:
        core.register_program(f"p-{tenant}", tenant)
        try:
            core.submit(f"p-{tenant}", tenant, call)
            core.dispatch()
            out.append("ok")
        except Overloaded:
            out.append("full")
    return out


@pytest.mark.parametrize(("max_queued", "per_tenant", "calls", "expected"), [
    (0, 0, [("a", f"c{i}") for i in range(6)], ["ok"] * 6),  # unbounded
    # one running + 3 waiting; the 5th finds 3 waiting of 3
    (3, 0, [("a", f"c{i}") for i in range(6)], ["ok"] * 4 + ["full"] * 2),
    (0, 2, [("a", "c0"), ("a", "c1"), ("a", "c2"), ("a", "c3"), ("b", "c0"), ("b", "c1")],
     ["ok", "ok", "ok", "full", "ok", "ok"]),
    (3, 2, [("a", "c0"), ("a", "c1"), ("a", "c2"), ("b", "c0"), ("b", "c1")],
     ["ok", "ok", "ok", "ok", "full"]),
])
def test_queue_bounds(max_queued: int, per_tenant: int, calls: list[tuple[str, str]],
                      expected: list[str]) -> None:
    assert submit_all(make_core(max_queued, per_tenant), calls) == expected


def test_a_refused_call_leaves_no_trace_and_room_frees_as_calls_run() -> None:
    core = make_core(max_queued=1)
    assert submit_all(core, [("a", "c0"), ("a", "c1"), ("a", "c2")]) == ["ok", "ok", "full"]
    assert "c2" not in core.program("p-a", "a").calls
    core.complete("p-a", "c0")
    core.dispatch()  # c1 runs: the queue has room again
    assert submit_all(core, [("a", "c2")]) == ["ok"]


@pytest.mark.parametrize(("limit", "programs", "expected"), [
    (0, 3, ["ok", "ok", "ok"]),
    (2, 3, ["ok", "ok", "full"]),
])
def test_open_programs_limit(limit: int, programs: int, expected: list[str]) -> None:
    core = make_core()
    out = []
    for i in range(programs):
        try:
            core.register_program(f"p{i}", "t", max_open=limit)
            out.append("ok")
        except Overloaded:
            out.append("full")
    assert out == expected
    core.register_program("p0", "t", max_open=limit)  # the same program again: not a new one
    core.register_program("q0", "other", max_open=limit)  # another tenant's count
    if limit:
        core.end_program("p0", "t")
        core.register_program("p9", "t", max_open=limit)  # ended one: room for one more


def test_weights_can_change_but_must_be_positive() -> None:
    core = make_core()
    core.set_tenant_weights({"a": 3.0})
    with pytest.raises(ValueError, match="positive"):
        core.set_tenant_weights({"a": 0.0})
