"""Tenant shares on an uncapped worker (planner/core/tenants.py `_judged`, with the loads of
planner/core/tenant_loads.py): a worker whose budget is above the isolation budget is
judged by it. Table-driven, alone and in the planner, in virtual time (issue #17)."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.tenant_loads import LOAD_TAU_S
from planner.core.tenants import BETWEEN_CALLS_S, TenantShares
from tests.planner.test_tenant_shares import flood, grants_by_tenant, planner, shares_with

UNCAPPED = 1 << 20  # a planner with no budget: every call granted at once


@pytest.mark.parametrize(
    ("running", "queued", "isolation_budget", "allowed"),
    [
        # no isolation budget: uncapped, nobody's share binds (both "light" of 2**19)
        ({"noisy": 90, "quiet": 4}, {"noisy": 9}, 0, {"noisy": True, "quiet": True}),
        # judged as a budget of 32 (shares 16 and 16, isolating 18, heavy share of it 9):
        # quiet light (4 running), noisy heavy (90): noisy waits, quiet goes on
        ({"noisy": 90, "quiet": 4}, {"noisy": 9}, 32, {"noisy": False, "quiet": True}),
        # under 18 in flight, noisy may still fill
        ({"noisy": 12, "quiet": 4}, {"noisy": 9}, 32, {"noisy": True}),
        # noisy below its 9 of the isolating budget keeps it
        ({"noisy": 8, "quiet": 12}, {"noisy": 9}, 32, {"noisy": True}),
        # both heavy (beyond 16 each with their waiting calls): nobody light, no limit
        ({"noisy": 60, "quiet": 40}, {"noisy": 9, "quiet": 9}, 32,
         {"noisy": True, "quiet": True}),
        # both light: no limit either
        ({"noisy": 10, "quiet": 10}, {}, 32, {"noisy": True, "quiet": True}),
    ],
)
def test_an_uncapped_worker_is_judged_by_the_isolation_budget(
        running: dict[str, int], queued: dict[str, int], isolation_budget: int,
        allowed: dict[str, bool]) -> None:
    shares, worker = shares_with(running, queued=queued, budget=UNCAPPED, isolation=0.5625,
                                 isolation_budget=isolation_budget)
    settle(shares)
    assert {t: shares.allows(t, worker) for t in allowed} == allowed


def settle(shares: TenantShares) -> None:
    """The tenants' loads as if their counts had stood so for a long time."""
    shares.observe(0.0)
    shares.observe(100 * LOAD_TAU_S)


@pytest.mark.parametrize(
    ("running", "queued", "workers", "allowed"),
    [
        # quiet active between calls (nothing running or waiting): the flood fills the
        # worker up to the isolation budget, 32, and no further
        ({"noisy": 31}, {"noisy": 40}, 1, True),
        ({"noisy": 32}, {"noisy": 40}, 1, False),
        # 8 workers: heavy from 1.25 x its share of 8 x 32 (160 calls), the bound the same
        ({"noisy": 150}, {"noisy": 40}, 8, False),
        # 99 of 128 is not heavy there: nothing held
        ({"noisy": 90, "quiet": 4}, {"noisy": 9}, 8, True),
        # quiet has a call here: noisy keeps only its 9 of the isolating 18
        ({"noisy": 20, "quiet": 4}, {"noisy": 16}, 1, False),
        ({"noisy": 8, "quiet": 10}, {"noisy": 16}, 1, True),
        # quiet at 12 of its 16 is not light: nobody is held
        ({"noisy": 20, "quiet": 12}, {"noisy": 16}, 1, True),
    ],
)
def test_a_light_tenant_keeps_an_uncapped_workers_batch_small(
        running: dict[str, int], queued: dict[str, int], workers: int, allowed: bool) -> None:
    """Judged by an isolation budget of 32 (shares of 16), while a light tenant is active
    (here: quiet, between calls unless it runs one) a heavy one fills an uncapped worker to
    32 calls, or to its 9 of the isolating 18 while the light one has calls there (#17)."""
    shares, worker = shares_with(running, queued=queued, budget=UNCAPPED, isolation=0.5625,
                                 isolation_budget=32, active={"quiet"})
    shares.loads.workers = workers
    settle(shares)
    assert shares.allows("noisy", worker) is allowed
    assert shares.allows("quiet", worker)


@pytest.mark.parametrize("raised", [False, True])
def test_an_uncapped_planner_holds_the_flood_to_the_isolation_budget_while_quiet_is_active(
        raised: bool) -> None:
    """No budget (every call granted at once), an isolation budget of 8: quiet runs a tool
    between calls, active; the flood, waiting long enough to count as heavy, gets 8 calls,
    not all 20. Once quiet has gone quiet past BETWEEN_CALLS_S, nothing holds it back.
    `raised`: the worker registered with a budget of 4 and a heartbeat raised it."""
    core, clock = planner(budget=4 if raised else UNCAPPED, isolation_budget=8,
                          isolation_fraction=0.5)
    if raised:
        core.upsert_worker("w0", "a0", UNCAPPED)
    flood(core, "quiet", 1)
    [quiet] = core.dispatch()
    core.complete(quiet.program_id, "c", service_s=1.0)  # its program open: a tool runs
    flood(core, "noisy", 20)
    clock.advance(BETWEEN_CALLS_S - 1)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 8
    flood(core, "quiet", 1, start=1)  # quiet's next call goes at once, beside the 8
    assert [t for t, _ in grants_by_tenant(core)] == ["quiet"]
    core.complete("quiet1", "c", service_s=1.0)
    clock.advance(BETWEEN_CALLS_S + 1)
    flood(core, "noisy", 1, start=20)  # a dispatch after quiet went stale: the rest go
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 13


def held_on_w0(fan_out: bool) -> tuple[PlannerCore, ManualClock]:
    """Two uncapped workers judged by an isolation budget of 8 (shares of 8 of the 16;
    isolating 4 a worker), affinity. The flood's 16 programs ran their first calls on w0,
    where quiet has a call; each submits its next call (`fan_out`: noisy16 two, of the same
    parent), parked on w0: 3 run beside quiet's, the rest are held."""
    core, clock = planner("fcfs+affinity", budget=UNCAPPED, isolation_budget=8,
                          isolation_fraction=0.5, max_home_wait_s=2.0)
    flood(core, "quiet", 1)
    flood(core, "noisy", 16, start=1)
    assert {g.worker_id for g in core.dispatch()} == {"w0"}  # one worker so far
    clock.advance(100 * LOAD_TAU_S)
    core.dispatch()  # the loads: noisy 16 running (heavy), quiet 1 (light)
    core.upsert_worker("w1", "a1", UNCAPPED)
    for i in range(1, 17):
        core.complete(f"noisy{i}", "c", service_s=1.0)
        core.submit(f"noisy{i}", "noisy", "d", parents=["c"])  # parked on w0, its home
        if fan_out and i == 16:
            core.submit(f"noisy{i}", "noisy", "e", parents=["c"])
    assert [g.worker_id for g in core.dispatch()] == ["w0"] * 3
    return core, clock



@pytest.mark.parametrize("quiet_stays", [False, True])
def test_a_held_flood_waits_for_its_home_instead_of_moving(quiet_stays: bool) -> None:
    """`held_on_w0`: the flood's next calls, held on w0, stay parked there
    past max_home_wait_s instead of moving to w1, where each would re-prefill its context
    (planner/core/parking.py), and run on w0 once quiet is gone; or, with quiet staying,
    on w1 once queued starvation_max_s (60 s). (Calls waiting for a full home still go
    elsewhere after max_home_wait_s: tests/planner/test_parking.py.)"""
    core, clock = held_on_w0(fan_out=False)
    clock.advance(3.0)  # past max_home_wait_s
    assert core.dispatch() == [] and core.queued == 13
    clock.advance(50.0)
    assert core.dispatch() == [] and core.queued == 13  # parked again every 2 s
    if quiet_stays:
        clock.advance(10.0)  # queued 63 s: past starvation_max_s
        assert {g.worker_id for g in core.dispatch()} == {"w1"}
        return
    core.complete("quiet0", "c", service_s=1.0)
    core.end_program("quiet0", "quiet")
    clock.advance(BETWEEN_CALLS_S + 1)
    assert [g.worker_id for g in core.dispatch()] == ["w0"] * 13


def test_a_held_fan_out_moves_after_max_home_wait() -> None:
    """As above, but noisy16's two calls of one parent (siblings: a fan-out's) go to w1 after
    max_home_wait_s: moved together they prefill their shared context there once."""
    core, clock = held_on_w0(fan_out=True)
    clock.advance(3.0)
    assert sorted((g.program_id, g.call_id, g.worker_id) for g in core.dispatch()) == \
        [("noisy16", "d", "w1"), ("noisy16", "e", "w1")]
