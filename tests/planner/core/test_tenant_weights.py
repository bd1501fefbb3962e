"""Tenants' fair-share weights: a change reaches the tenants' shares of the workers while the
same tenants stay active (review F4). Pure, clock-injected."""

from __future__ import annotations

import pytest

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
