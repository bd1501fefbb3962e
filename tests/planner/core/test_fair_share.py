"""Weighted fair share across tenants (planner/core/fair_share.py): where a tenant that
becomes active starts, table-driven on FairShare itself and through the planner."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.fair_share import FairShare
from tests.planner.test_policies import core_with


@pytest.mark.parametrize(("charged", "active", "starts_at"), [
    ([], [], 0.0),  # nothing served yet
    ([("a", 100.0)], ["a"], 100.0),  # the least virtual time of the tenants with calls queued
    ([("a", 100.0), ("c", 30.0)], ["a", "c"], 30.0),
    ([("a", 100.0)], [], 100.0),  # none queued: where the charges reached (not 0: banked)
    ([("a", 100.0), ("c", 30.0)], [], 100.0),  # the latest a charge reached: never back
])
def test_a_tenant_that_becomes_active_starts_where_the_others_are(
        charged: list[tuple[str, float]], active: list[str], starts_at: float) -> None:
    share = FairShare()
    for tenant, service_s in charged:
        share.account(tenant, service_s)
    share.activate("b", active)
    assert share.vtime["b"] == starts_at


def test_an_idle_tenant_keeps_a_later_virtual_time_of_its_own() -> None:
    share = FairShare()
    share.account("b", 500.0)
    share.account("a", 100.0)
    share.activate("b", [])
    assert share.vtime["b"] == 500.0


def _served_with_as_next_step(core: PlannerCore, clock: ManualClock) -> list[str]:
    """The calls granted one by one on one slot, each served 1 s, tenant A's next step
    (a1) coming after the first."""
    order = []
    for step in range(8):
        if step == 1:
            core.submit("pa", "A", "a1")
        [grant] = core.dispatch()
        order.append(grant.call_id)
        clock.advance(1.0)
        core.complete(grant.program_id, grant.call_id, service_s=1.0)
    return order


@pytest.mark.parametrize("a_has_queued_call", [True, False])
def test_a_tenant_arriving_between_anothers_calls_banks_no_credit(
        a_has_queued_call: bool) -> None:
    """Tenant A has attained 100 s and is between calls (its program open; with
    `a_has_queued_call` one more waits). B arrives with 10 calls. Whether A has a call
    queued at that instant must not decide whether B starts at virtual time 0 and runs its
    whole backlog ahead of A's next call (a review found it did) or at A's 100."""
    core, clock = core_with("fcfs+least_load", workers=1, budget=1)
    core.register_program("pa", "A")
    core.register_program("pb", "B")
    core.submit("pa", "A", "a0")
    core.dispatch()
    clock.advance(100.0)
    core.complete("pa", "a0", service_s=100.0)
    if a_has_queued_call:
        core.submit("pa", "A", "a-queued")
    for i in range(10):
        core.submit("pb", "B", f"b{i}")
    order = _served_with_as_next_step(core, clock)
    assert "a1" in order[:4], order  # B and A alternate from B's arrival


def test_a_tenant_arriving_between_calls_banks_no_credit_whoever_ended_last() -> None:
    """As above, but tenant B's 1-s call, queued behind A's, ends last: C must start from
    A's 100, not B's 1 (a review found the floor went back to whoever was charged last)."""
    core, clock = core_with("fcfs+least_load", workers=1, budget=1)
    for program, tenant in (("pa", "A"), ("pb", "B"), ("pc", "C")):
        core.register_program(program, tenant)
    core.submit("pa", "A", "a0")
    core.dispatch()
    core.submit("pb", "B", "b0")  # waits behind a0
    clock.advance(100.0)
    core.complete("pa", "a0", service_s=100.0)
    [grant] = core.dispatch()
    assert grant.call_id == "b0"
    clock.advance(1.0)
    core.complete("pb", "b0", service_s=1.0)  # charged last: B at 1
    for i in range(10):
        core.submit("pc", "C", f"c{i}")
    order = _served_with_as_next_step(core, clock)
    assert "a1" in order[:4], order
