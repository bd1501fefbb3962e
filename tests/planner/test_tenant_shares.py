"""Tenant shares of each worker's budget (planner/core/tenants.py): table-driven, alone and in
the planner, in virtual time."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore, WorkerState
from planner.core.policies import LEVEL_STEP
from planner.core.selection import parse_policy
from planner.core.tenants import BETWEEN_CALLS_S, TenantShares

WEIGHTS = {"quiet": 1.0, "noisy": 1.0, "big": 2.0}


def shares_with(running: dict[str, int], *, queued: dict[str, int] | None = None,
                parked_here: dict[str, int] | None = None, active: set[str] | None = None,
                budget: int = 16, hold: str = "waiting", isolation: float = 1.0,
                backlog: dict[str, int] | None = None, isolation_budget: int = 0,
                weights: dict[str, float] = WEIGHTS) -> tuple[TenantShares, WorkerState]:
    """Shares of one worker "w0" with `running` calls on it, as the planner keeps them."""
    queued, parked_here = queued or {}, parked_here or {}
    shares = TenantShares(weights.__getitem__, hold=hold, queued=lambda t: queued.get(t, 0),
                          parked_on=lambda w, t: parked_here.get(t, 0) if w == "w0" else 0,
                          backlog=None if backlog is None else lambda t: backlog.get(t, 0),
                          isolation_fraction=isolation, isolation_budget=isolation_budget)
    worker = WorkerState("w0", "a0", budget, last_seen=0.0)
    shares.judge([worker])
    for tenant, n in running.items():
        for _ in range(n):
            worker.inflight += 1
            shares.running(tenant, worker, +1)
    shares.refresh(set(running) | set(queued) | set(parked_here) | (active or set()))
    return shares, worker


@pytest.mark.parametrize(
    ("running", "queued", "parked_here", "active", "hold", "allowed"),
    [
        # one active tenant: the whole budget (work-conserving)
        ({"noisy": 15}, {"noisy": 9}, {}, set(), "waiting", {"noisy": True}),
        # quiet waits in the queue, noisy is at its share (8 of 16): 8 slots held for quiet
        ({"noisy": 8}, {"quiet": 1, "noisy": 9}, {}, set(), "waiting",
         {"noisy": False, "quiet": True}),
        # below its share a tenant may always take a slot
        ({"noisy": 7}, {"quiet": 1, "noisy": 9}, {}, set(), "waiting", {"noisy": True}),
        # quiet runs 1 and waits: 7 slots held, 8 free: noisy may take one, leaving 7
        ({"noisy": 7, "quiet": 1}, {"quiet": 1}, {}, set(), "waiting", {"noisy": True}),
        ({"noisy": 8, "quiet": 1}, {"quiet": 1}, {}, set(), "waiting", {"noisy": False}),
        # quiet is active but has nothing waiting: "waiting" holds nothing, "active" holds
        ({"noisy": 12, "quiet": 1}, {"noisy": 9}, {}, set(), "waiting", {"noisy": True}),
        ({"noisy": 12, "quiet": 1}, {"noisy": 9}, {}, set(), "active", {"noisy": False}),
        ({"noisy": 8}, {"noisy": 9}, {}, {"quiet"}, "active", {"noisy": False}),
        ({"noisy": 7}, {"noisy": 9}, {}, {"quiet"}, "active", {"noisy": True}),
        # quiet's calls parked on this worker want it; parked elsewhere they do not
        ({"noisy": 8}, {"noisy": 9}, {"quiet": 1}, set(), "waiting", {"noisy": False}),
        ({"noisy": 8}, {"noisy": 9}, {}, {"quiet"}, "waiting", {"noisy": True}),
        # weights 2:1:1 over 16 slots: 8, 4, 4; quiet waits (4 held), noisy at its 4
        ({"big": 8, "noisy": 4}, {"quiet": 1, "big": 1, "noisy": 1}, {}, set(), "waiting",
         {"big": False, "noisy": False, "quiet": True}),
        # ... big at 7 of its 8 may still take one
        ({"big": 7, "noisy": 4}, {"quiet": 1, "big": 1}, {}, set(), "waiting",
         {"big": True, "noisy": False}),
        # a full worker: nobody
        ({"noisy": 16}, {"quiet": 1}, {}, set(), "waiting", {"noisy": False, "quiet": False}),
        # off: fair share alone, as before
        ({"noisy": 15}, {"quiet": 1, "noisy": 9}, {}, set(), "off",
         {"noisy": True, "quiet": True}),
    ],
)
def test_who_may_take_a_free_slot(running: dict[str, int], queued: dict[str, int],
                                  parked_here: dict[str, int], active: set[str], hold: str,
                                  allowed: dict[str, bool]) -> None:
    shares, worker = shares_with(running, queued=queued, parked_here=parked_here,
                                 active=active, hold=hold)
    assert {t: shares.allows(t, worker) for t in allowed} == allowed


@pytest.mark.parametrize(
    ("running", "active", "boosted"),
    [
        ({"noisy": 8}, {"quiet"}, {"quiet": True, "noisy": False}),
        ({"noisy": 8, "quiet": 3}, set(), {"quiet": True, "noisy": False}),
        ({"noisy": 4, "quiet": 4}, set(), {"quiet": False, "noisy": False}),  # level: nobody
        ({"noisy": 2, "quiet": 9}, set(), {"quiet": False, "noisy": True}),
        ({"noisy": 15}, set(), {"noisy": False}),  # alone: no boost
        # 2:1:1; quiet and noisy both empty: both furthest below, big above
        ({"big": 4}, {"quiet", "noisy"}, {"quiet": True, "noisy": True, "big": False}),
    ],
)
def test_the_tenant_furthest_below_its_share_is_boosted(
        running: dict[str, int], active: set[str], boosted: dict[str, bool]) -> None:
    shares, worker = shares_with(running, active=active)
    assert {t: shares.boosted(t, worker) for t in boosted} == boosted


@pytest.mark.parametrize(
    ("running", "queued", "active", "isolation", "allowed"),
    [
        # 16 slots, shares 8 and 8; isolating budget 8 (0.5), heavy tenants' share of it 4.
        # quiet is light (1 running, nothing waiting), noisy heavy (9 waiting): under 8 in
        # flight noisy may still fill
        ({"noisy": 6, "quiet": 1}, {"noisy": 9}, set(), 0.5, {"noisy": True, "quiet": True}),
        # 8 in flight: noisy, at 7 of its 4, waits; quiet may always take a slot
        ({"noisy": 7, "quiet": 1}, {"noisy": 9}, set(), 0.5, {"noisy": False, "quiet": True}),
        # no isolating budget (1.0): the share rules alone let noisy fill the free slots
        ({"noisy": 7, "quiet": 1}, {"noisy": 9}, set(), 1.0, {"noisy": True}),
        # a heavy tenant below its share of the isolating budget keeps it
        ({"noisy": 3, "quiet": 5}, {"noisy": 9}, set(), 0.5, {"noisy": True}),
        # quiet heavy too (it waits beyond its share): nobody is light, no limit
        ({"noisy": 7, "quiet": 1}, {"noisy": 9, "quiet": 9}, set(), 0.5, {"noisy": True}),
        # quiet active between calls (a program open, nothing running or waiting here): it
        # holds nobody back here, the share rules alone decide
        ({"noisy": 8}, {"noisy": 9}, {"quiet"}, 0.5, {"noisy": True}),
        # alone: the whole budget
        ({"noisy": 15}, {"noisy": 9}, set(), 0.5, {"noisy": True}),
        # weights 2:1:1 (shares 8, 4, 4; of the isolating 8: 4, 2, 2), quiet light
        ({"big": 3, "noisy": 3, "quiet": 1}, {"big": 9, "noisy": 9}, set(), 0.5,
         {"big": True, "noisy": True, "quiet": True}),
        ({"big": 4, "noisy": 4, "quiet": 1}, {"big": 9, "noisy": 9}, set(), 0.5,
         {"big": False, "noisy": False, "quiet": True}),
        ({"big": 3, "noisy": 5, "quiet": 1}, {"big": 9, "noisy": 9}, set(), 0.5,
         {"big": True, "noisy": False}),
    ],
)
def test_heavy_tenants_keep_the_batch_small_while_a_light_one_is_active(
        running: dict[str, int], queued: dict[str, int], active: set[str], isolation: float,
        allowed: dict[str, bool]) -> None:
    shares, worker = shares_with(running, queued=queued, active=active, isolation=isolation)
    assert {t: shares.allows(t, worker) for t in allowed} == allowed


def test_bad_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="hold"):
        TenantShares(WEIGHTS.__getitem__, hold="maybe", queued=lambda t: 0,
                     parked_on=lambda w, t: 0)
    with pytest.raises(ValueError, match="isolation_fraction"):
        TenantShares(WEIGHTS.__getitem__, queued=lambda t: 0, parked_on=lambda w, t: 0,
                     isolation_fraction=0.0)
    with pytest.raises(ValueError, match="isolation_budget"):
        TenantShares(WEIGHTS.__getitem__, queued=lambda t: 0, parked_on=lambda w, t: 0,
                     isolation_budget=-1)


# ---- in the planner -------------------------------------------------------------------


def planner(policy: str = "fcfs+round_robin", budget: int = 4, workers: int = 1,
            **kw: object) -> tuple[PlannerCore, ManualClock]:
    """A planner with the share rules alone unless `isolation_fraction` is given."""
    clock = ManualClock()
    kw.setdefault("isolation_fraction", 1.0)
    core = PlannerCore(clock, *parse_policy(policy), **kw)  # type: ignore[arg-type]
    for i in range(workers):
        core.upsert_worker(f"w{i}", f"a{i}", budget)
    return core, clock


def flood(core: PlannerCore, tenant: str, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        core.register_program(f"{tenant}{i}", tenant)
        core.submit(f"{tenant}{i}", tenant, "c")
        ids.append(f"{tenant}{i}")
    return ids


def grants_by_tenant(core: PlannerCore) -> list[tuple[str, int]]:
    return [(g.program_id.rstrip("0123456789"), g.priority) for g in core.dispatch()]


@pytest.mark.parametrize("hold", ["waiting", "active"])
def test_one_tenant_alone_gets_the_whole_budget(hold: str) -> None:
    core, _ = planner(tenant_shares=hold)
    flood(core, "noisy", 10)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 4


def test_a_waiting_quiet_tenant_gets_the_freed_slots_and_runs_first_in_the_engine() -> None:
    """4 slots, shares 2 and 2. The flood fills the worker; quiet's calls arrive; as noisy
    calls end, quiet takes the slots up to its share, boosted above every level."""
    core, _ = planner("plas+round_robin")
    noisy = flood(core, "noisy", 10)
    assert len(core.dispatch()) == 4
    flood(core, "quiet", 3)
    assert core.dispatch() == []  # full
    unboosted_max = len(core._priority.thresholds) * LEVEL_STEP
    core.complete(noisy[0], "c", service_s=1.0)
    [(tenant, prio)] = grants_by_tenant(core)
    assert tenant == "quiet" and prio > unboosted_max
    core.complete(noisy[1], "c", service_s=1.0)
    [(tenant, prio)] = grants_by_tenant(core)
    assert tenant == "quiet" and prio > unboosted_max  # 1 of its 2: still furthest below
    core.complete(noisy[2], "c", service_s=1.0)
    # Quiet is at its share (2 of 2) and first by fair share, but noisy (1 of 2) is owed the
    # slot: noisy's call runs, and now it is the one furthest below its share.
    assert grants_by_tenant(core) == [("noisy", unboosted_max + core._boost)]


@pytest.mark.parametrize(("hold", "noisy_running"), [("waiting", 3), ("active", 2)])
def test_hold_active_keeps_room_for_a_tenant_between_calls(hold: str,
                                                           noisy_running: int) -> None:
    """Quiet runs one call and has nothing queued (its program is running a tool). With
    "waiting" the flood may fill the rest; with "active" it stops at its share (2 of 4)."""
    core, _ = planner(tenant_shares=hold)
    flood(core, "quiet", 1)
    assert [t for t, _ in grants_by_tenant(core)] == ["quiet"]
    flood(core, "noisy", 10)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * noisy_running


@pytest.mark.parametrize(("cancel", "granted"), [(False, ["quiet", "noisy"]),
                                                 (True, ["noisy", "noisy"])])
def test_cancelled_waiting_calls_stop_holding_room(cancel: bool, granted: list[str]) -> None:
    core, _ = planner()
    noisy = flood(core, "noisy", 10)
    core.dispatch()
    flood(core, "quiet", 1)
    core.complete(noisy[0], "c", service_s=1.0)
    core.complete(noisy[1], "c", service_s=1.0)
    if cancel:
        core.cancel("quiet0", "c")  # before the planner dispatched it
    assert [t for t, _ in grants_by_tenant(core)] == granted
    assert core.queued == 5 if not cancel else 4


@pytest.mark.parametrize(("hold", "granted"), [("off", ["quiet"]), ("waiting", ["quiet"])])
def test_parked_calls_of_an_over_share_tenant_wait_for_the_quiet_one(
        hold: str, granted: list[str]) -> None:
    """Affinity parks a call on its home (in that worker's lane of the queue) while the home
    is full. When the home frees a slot, the call parked there and the global queue's calls
    compete by fair share, shares or not: the quiet tenant, with less service, goes first."""
    core, _ = planner("fcfs+affinity", workers=2, budget=2, tenant_shares=hold)
    flood(core, "noisy", 4)
    assert [g.worker_id for g in core.dispatch()] == ["w0", "w1", "w0", "w1"]
    core.complete("noisy0", "c", service_s=1.0)
    flood(core, "noisy", 1, start=4)
    core.submit("noisy0", "noisy", "d", parents=["c"])  # home: w0
    core.complete("noisy1", "c", service_s=1.0)
    assert [(g.program_id, g.worker_id) for g in core.dispatch()] == [("noisy4", "w0")]
    assert core.queued == 1  # noisy0's d, parked on the full w0
    flood(core, "quiet", 1)
    assert [(g.program_id, g.worker_id) for g in core.dispatch()] == [("quiet0", "w1")]
    flood(core, "quiet", 1, start=1)
    assert core.dispatch() == []
    core.complete("noisy2", "c", service_s=1.0)  # w0: one slot; noisy holds 1 of its 1
    assert [t for t, _ in grants_by_tenant(core)] == granted


def test_counts_follow_calls_through_workers_leaving_and_restarts() -> None:
    core, _ = planner(workers=2, budget=2)
    flood(core, "noisy", 3)
    flood(core, "quiet", 1)
    core.dispatch()
    w0 = core.workers[0]
    assert sum(w0.tenants.values()) == w0.inflight
    core.remove_worker("w0")
    core.upsert_worker("w0", "a0", 2)  # back: its running calls are counted again
    w0 = core.workers[0]
    assert sum(w0.tenants.values()) == w0.inflight == 2
    for w in core.workers:
        for tenant in list(w.tenants):
            for prog in [p for p in ("noisy0", "noisy1", "noisy2", "quiet0")
                         if p.startswith(tenant)]:
                call = core.program(prog, tenant).calls["c"]
                if call.worker_id == w.worker_id and not call.state.finished:
                    core.complete(prog, "c", service_s=1.0)
    assert all(not w.tenants and w.inflight == 0 for w in core.workers)


def test_in_the_planner_a_light_tenant_keeps_the_flood_to_the_isolating_budget() -> None:
    """8 slots, isolating budget 4 (0.5). While quiet has a call running the flood fills
    up to 4 in flight, not 8; between quiet's calls (a tool runs) it may fill the worker,
    and quiet's next call, once a slot frees, is boosted and isolates the worker again."""
    core, _ = planner(budget=8, isolation_fraction=0.5)
    flood(core, "quiet", 1)
    core.dispatch()
    flood(core, "noisy", 20)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 3
    core.complete("quiet0", "c", service_s=1.0)  # between calls
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 5
    core.submit("quiet0", "quiet", "d", parents=["c"])
    assert core.dispatch() == []  # the worker is full: quiet waits for a slot
    core.complete("noisy0", "c", service_s=1.0)
    [(tenant, prio)] = grants_by_tenant(core)
    assert tenant == "quiet" and prio >= core._boost
    for i in (1, 2, 3):
        core.complete(f"noisy{i}", "c", service_s=1.0)
    assert core.dispatch() == []  # 4 noisy and quiet in flight: over the isolating budget


def test_in_the_planner_hold_active_keeps_room_between_calls_for_a_while() -> None:
    """hold="active": quiet's program between calls (a tool runs) keeps its room (4 of 8)
    until quiet has not been heard from for BETWEEN_CALLS_S."""
    core, clock = planner(budget=8, tenant_shares="active")
    flood(core, "quiet", 1)
    core.dispatch()
    core.complete("quiet0", "c", service_s=1.0)
    flood(core, "noisy", 20)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 4
    clock.advance(BETWEEN_CALLS_S - 1)
    assert core.dispatch() == []  # still active: quiet may be running a tool
    clock.advance(2)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 4  # quiet went quiet


def test_in_the_planner_an_ended_light_tenant_holds_nobody_back() -> None:
    core, _ = planner(budget=8, isolation_fraction=0.5)
    flood(core, "quiet", 1)
    core.dispatch()
    core.complete("quiet0", "c", service_s=1.0)
    core.end_program("quiet0", "quiet")
    flood(core, "noisy", 20)
    assert [t for t, _ in grants_by_tenant(core)] == ["noisy"] * 8
