"""The tenant gate never turns against a tenant whose own calls stop waiting
(planner/core/tenants.py, `TenantShares.gate`). Dispatch relies on it: a call of the global
lane that passed its worker's gate is popped, which lowers only its own tenant's counts, and
that worker is not asked again when the call is placed (planner/core/dispatch.py, `_place`).
Pure; a fixed-seed sample of states (every rule of the gate reached), not timed."""

from __future__ import annotations

import random

import pytest

from tests.planner.test_tenant_shares import shares_with

WEIGHTS = {"a": 1.0, "b": 1.0, "c": 2.0}
BUDGET = 8


def _gate(running: dict[str, int], queued: dict[str, int], parked: dict[str, int],
          backlog: dict[str, int], hold: str, fraction: float, tenant: str) -> bool:
    shares, worker = shares_with(running, queued=queued, parked_here=parked, backlog=backlog,
                                 active=set(WEIGHTS), budget=BUDGET, hold=hold,
                                 isolation=fraction, weights=WEIGHTS)
    return shares.gate(worker)(tenant)


@pytest.mark.parametrize("hold", ["waiting", "active"])
@pytest.mark.parametrize("fraction", [0.5625, 1.0])
def test_a_popped_call_never_closes_its_own_tenants_gate(hold: str, fraction: float) -> None:
    rng = random.Random(17)
    checked = 0
    for _ in range(3000):
        running = {t: rng.randint(0, 4) for t in WEIGHTS}
        if sum(running.values()) >= BUDGET:
            continue  # no free slot: the gate is shut for everyone
        queued = {t: rng.choice((0, 0, 1, 2, 5)) for t in WEIGHTS}
        parked = {t: rng.choice((0, 0, 1, 3)) for t in WEIGHTS}
        backlog = {t: queued[t] + parked[t] + rng.choice((0, 0, 2, 9)) for t in WEIGHTS}
        tenant = rng.choice(list(WEIGHTS))
        if not queued[tenant] or not _gate(running, queued, parked, backlog, hold, fraction,
                                           tenant):
            continue
        popped = dict(queued, **{tenant: queued[tenant] - 1})
        less = dict(backlog, **{tenant: backlog[tenant] - 1})
        assert _gate(running, popped, parked, less, hold, fraction, tenant), \
            (running, queued, parked, backlog, tenant)
        checked += 1
    assert checked > 500  # the sample reached the gate's rules, not only its shortcuts
