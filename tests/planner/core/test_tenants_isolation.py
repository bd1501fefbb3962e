"""The isolating budget's default (planner/core/tenants.py, ISOLATION_FRACTION): while a light
tenant is active on a worker, heavy tenants fill at most that fraction of its budget.
Table-driven, pure."""

from __future__ import annotations

import pytest

from planner.core import WorkerState
from planner.core.tenants import ISOLATION_FRACTION, TenantShares

BUDGET = 32  # ISOLATION_FRACTION x 32 = 18 slots


def gate_of(running: dict[str, int], queued: dict[str, int], active: set[str],
            parked: dict[str, int] | None = None, **kw: float) -> tuple[TenantShares, WorkerState]:
    here = parked or {}
    shares = TenantShares(lambda t: 1.0, queued=lambda t: queued.get(t, 0),
                          parked_on=lambda w, t: here.get(t, 0) if w == "w0" else 0, **kw)
    worker = WorkerState("w0", "a0", BUDGET, last_seen=0.0)
    for tenant, n in running.items():
        for _ in range(n):
            worker.inflight += 1
            shares.running(tenant, worker, +1)
    shares.refresh(set(running) | set(queued) | set(here) | active)
    return shares, worker


def test_the_default_is_18_of_32() -> None:
    assert ISOLATION_FRACTION * BUDGET == 18
    assert TenantShares(lambda t: 1.0, queued=lambda t: 0,
                        parked_on=lambda w, t: 0).isolation_fraction == ISOLATION_FRACTION


@pytest.mark.parametrize(
    ("running", "queued", "active", "kw", "allowed"),
    [
        # quiet light (2 running, nothing waiting), noisy floods: noisy fills up to 18
        ({"quiet": 2, "noisy": 15}, {"noisy": 50}, set(), {}, {"noisy": True, "quiet": True}),
        ({"quiet": 2, "noisy": 16}, {"noisy": 50}, set(), {}, {"noisy": False, "quiet": True}),
        # the light tenant always may, whatever the batch
        ({"quiet": 2, "noisy": 28}, {"noisy": 50}, set(), {}, {"quiet": True}),
        # quiet active but with no call here or waiting (between calls, or on other
        # workers): noisy fills the worker
        ({"noisy": 30}, {"noisy": 50}, {"quiet"}, {}, {"noisy": True}),
        # no light tenant (quiet at its 16, more waiting): no isolating budget, noisy below
        # its share may take a slot; beside a light quiet it may not (the batch is over 18)
        ({"quiet": 16, "noisy": 15}, {"quiet": 5, "noisy": 50}, set(), {}, {"noisy": True}),
        ({"quiet": 2, "noisy": 15}, {"noisy": 50}, set(), {}, {"noisy": True}),
        ({"quiet": 3, "noisy": 15}, {"noisy": 50}, set(), {}, {"noisy": False}),
        # noisy alone: the whole budget
        ({"noisy": 31}, {"noisy": 50}, set(), {}, {"noisy": True}),
        # isolation off (1.0): the share rules alone
        ({"quiet": 2, "noisy": 16}, {"noisy": 50}, set(), {"isolation_fraction": 1.0},
         {"noisy": True}),
    ],
)
def test_heavy_tenants_fill_the_isolating_budget_beside_a_light_one(
        running: dict[str, int], queued: dict[str, int], active: set[str],
        kw: dict[str, float], allowed: dict[str, bool]) -> None:
    shares, worker = gate_of(running, queued, active, **kw)
    assert {t: shares.allows(t, worker) for t in allowed} == allowed


@pytest.mark.parametrize(("parked_on_w0", "noisy_allowed"), [(1, False), (0, True)])
def test_a_light_call_parked_here_holds_the_flood_back(parked_on_w0: int,
                                                       noisy_allowed: bool) -> None:
    """Parked on w0, quiet's call keeps room there (and isolates it); quiet busy elsewhere
    does not."""
    shares, worker = gate_of({"noisy": 20}, {"noisy": 50}, {"quiet"},
                             parked={"quiet": parked_on_w0})
    assert shares.allows("noisy", worker) is noisy_allowed


@pytest.mark.parametrize(
    ("quiet_backlog", "noisy_allowed"),
    [
        (0, False),  # quiet's calls: 2 here, none waiting anywhere: light, noisy held at 18
        (3, False),  # 3 waiting in all (parked elsewhere): still within its share, light
        (200, True),  # 200 waiting on other workers' lanes: not light, no isolating budget
    ],
)
def test_a_tenant_with_a_backlog_elsewhere_is_not_light(quiet_backlog: int,
                                                        noisy_allowed: bool) -> None:
    """Light is judged on the tenant's waiting calls in every lane, not only those that
    could use this worker: with calls parked on their homes as they are queued, a tenant
    with hundreds waiting elsewhere looked light everywhere and held the others back with
    slots free (the planner bench at 1k queued: 46% of decisions granted nothing)."""
    here = {"quiet": 0}
    shares = TenantShares(lambda t: 1.0, queued=lambda t: 50 if t == "noisy" else 0,
                          parked_on=lambda w, t: here.get(t, 0),
                          backlog=lambda t: 50 if t == "noisy" else quiet_backlog)
    worker = WorkerState("w0", "a0", BUDGET, last_seen=0.0)
    for tenant, n in {"quiet": 2, "noisy": 16}.items():
        for _ in range(n):
            worker.inflight += 1
            shares.running(tenant, worker, +1)
    shares.refresh({"quiet", "noisy"})
    assert shares.allows("noisy", worker) is noisy_allowed
