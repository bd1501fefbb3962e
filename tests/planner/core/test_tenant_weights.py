"""Tenants' fair-share weights: a change reaches the tenants' shares of the workers while the
same tenants stay active (review F4); a weight out of cache/tenancy.check_weight's range is
refused wherever it comes in (review F1: an inf weight crashed dispatch, nan made the order
undefined, 0 made complete() raise half-way, 1e-300 beside 1e30 made a fraction 0).
Pure, clock-injected."""

from __future__ import annotations

import math

import pytest

from cache.tenancy import MAX_WEIGHT, MIN_WEIGHT
from ostinato.clock import ManualClock
from planner.core import CallState, PlannerCore
from planner.core.fair_share import FairShare
from planner.core.selection import parse_policy


def _flooded() -> tuple[PlannerCore, ManualClock]:
    """Tenants a and b, each with more calls queued than one worker of 8 slots takes."""
    clock = ManualClock()
    prio, route = parse_policy("fcfs+round_robin")
    core = PlannerCore(clock, prio, route, worker_ttl_s=1e9, program_idle_ttl_s=100,
                       program_admission=False)
    core.upsert_worker("w0", "addr0", 8)
    for t in ("a", "b"):
        core.register_program("p" + t, t)
        for i in range(20):
            core.submit("p" + t, t, f"{t}{i}")
    core.dispatch()
    return core, clock


def _turn(core: PlannerCore, clock: ManualClock) -> dict[str, int]:
    """Every running call ends, the worker is filled again: its calls per tenant."""
    clock.advance(1)
    for call in [c for c in core._calls.values() if c.state is CallState.RUNNING]:
        core.complete(call.program_id, call.call_id, service_s=1.0)
    core.dispatch()
    worker = core.worker("w0")
    assert worker is not None
    return dict(worker.tenants)


def test_a_weight_change_reaches_the_shares_of_the_same_active_tenants() -> None:
    core, clock = _flooded()
    assert core._shares._fraction == {"a": 0.5, "b": 0.5}
    core.set_tenant_weights({"a": 3.0, "b": 1.0})
    assert _turn(core, clock) == {"a": 6, "b": 2}
    assert core._shares._fraction == {"a": 0.75, "b": 0.25}
    core.set_tenant_weights({"a": 3.0})  # b not named: 1, as before
    fractions = core._shares._fraction
    _turn(core, clock)
    assert core._shares._fraction is fractions  # nothing changed: nothing worked out again
    core.set_tenant_weights({})
    assert _turn(core, clock) == {"a": 4, "b": 4}


@pytest.mark.parametrize(("before", "after", "changed"), [
    ({}, {}, False),
    ({}, {"a": 1.0}, False),  # a tenant not named weighs 1
    ({"a": 1.0}, {}, False),
    ({"a": 2.0}, {"a": 2.0, "b": 1.0}, False),
    ({}, {"a": 2.0}, True),
    ({"a": 2.0}, {}, True),
    ({"a": 2.0}, {"a": 3.0}, True),
    ({"a": 2.0}, {"b": 2.0}, True),
])
def test_set_weights_says_whether_a_weight_changed(before: dict[str, float],
                                                   after: dict[str, float],
                                                   changed: bool) -> None:
    fair = FairShare(before)
    assert fair.set_weights(after) is changed
    assert {t: fair.weight(t) for t in ("a", "b")} == {t: after.get(t, 1.0) for t in ("a", "b")}


BAD_WEIGHTS = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 5e-324, 1e-300, MIN_WEIGHT / 2,
               MAX_WEIGHT * 2, 1e30]


@pytest.mark.parametrize("weight", BAD_WEIGHTS)
def test_a_weight_out_of_range_is_refused_wherever_it_comes_in(weight: float) -> None:
    prio, route = parse_policy("fcfs+round_robin")
    with pytest.raises(ValueError, match=r"tenant 'a': .*positive number from 1e-06 to 1e\+06"):
        FairShare({"b": 2.0, "a": weight})
    with pytest.raises(ValueError, match="tenant 'a'"):
        PlannerCore(ManualClock(), prio, route, tenant_weights={"a": weight})
    core = PlannerCore(ManualClock(), prio, route, tenant_weights={"a": 2.0})
    with pytest.raises(ValueError, match="tenant 'a'"):
        core.set_tenant_weights({"b": 3.0, "a": weight})
    fair = core._queue.fair_share
    assert (fair.weight("a"), fair.weight("b")) == (2.0, 1.0)  # nothing changed


@pytest.mark.parametrize(("weights", "policy"), [
    ({"a": MIN_WEIGHT, "b": MAX_WEIGHT}, "fcfs+round_robin"),
    ({"a": MAX_WEIGHT, "b": MIN_WEIGHT}, "plas+least_load"),
    ({"a": MIN_WEIGHT, "b": MIN_WEIGHT}, "srpt+affinity"),
])
def test_weights_at_the_bounds_keep_shares_and_virtual_times_finite(
        weights: dict[str, float], policy: str) -> None:
    """The extremes that passed before and broke dispatch, now at the bounds: fractions
    above 0, virtual times finite, every call run."""
    clock = ManualClock()
    prio, route = parse_policy(policy)
    core = PlannerCore(clock, prio, route, tenant_weights=weights, program_admission=False)
    core.upsert_worker("w0", "addr0", 4)
    for t in ("a", "b"):
        core.register_program("p" + t, t)
        for i in range(6):
            core.submit("p" + t, t, f"{t}{i}")
    done = 0
    for _ in range(20):
        core.dispatch()
        assert all(f > 0 for f in core._shares._fraction.values())
        clock.advance(1)
        for call in [c for c in core._calls.values() if c.state is CallState.RUNNING]:
            core.complete(call.program_id, call.call_id, service_s=1e3)
            done += 1
    assert done == 12
    assert all(math.isfinite(v) for v in core._queue.fair_share.vtime.values())
