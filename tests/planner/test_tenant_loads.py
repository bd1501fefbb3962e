"""Tenants' loads (planner/core/tenant_loads.py): averaged calls running and waiting, and who
is light or heavy against a share of the isolation budget. Table-driven, in virtual time."""

from __future__ import annotations

import pytest

from planner.core import WorkerState
from planner.core.tenant_loads import LOAD_TAU_S, TenantLoads


def loads_of(budget: int = 32, worker_budgets: tuple[int, ...] = (1 << 20,)) -> TenantLoads:
    loads = TenantLoads(budget)
    loads.judge([WorkerState(f"w{i}", f"a{i}", b, last_seen=0.0)
                 for i, b in enumerate(worker_budgets)])
    return loads


def settled(demand: dict[str, int], **kw: object) -> TenantLoads:
    loads = loads_of(**kw)  # type: ignore[arg-type]
    loads.observe(0.0, demand, demand.__getitem__, lambda u: False)
    loads.observe(100 * LOAD_TAU_S, demand, demand.__getitem__, lambda u: False)
    return loads


@pytest.mark.parametrize(
    ("demand", "workers", "light", "heavy"),
    [
        # shares of 16 (two equal tenants of 32): light under 12, heavy from 20
        ({"quiet": 4, "noisy": 90}, 1, ["quiet"], ["noisy"]),
        ({"quiet": 11, "noisy": 20}, 1, ["quiet"], ["noisy"]),
        ({"quiet": 12, "noisy": 19}, 1, [], []),  # both in the band: neither
        ({"quiet": 0, "noisy": 0}, 1, ["quiet", "noisy"], []),
        # 8 workers: shares of 128, light under 96, heavy from 160
        ({"quiet": 90, "noisy": 150}, 8, ["quiet"], []),
        ({"quiet": 90, "noisy": 160}, 8, ["quiet"], ["noisy"]),
    ],
)
def test_light_and_heavy_against_a_share_of_the_budget_on_every_worker(
        demand: dict[str, int], workers: int, light: list[str], heavy: list[str]) -> None:
    loads = settled(demand, worker_budgets=(1 << 20,) * workers)
    assert loads.classify({"quiet": 0.5, "noisy": 0.5}) == (light, heavy)


def test_a_burst_is_not_heavy_until_it_lasts() -> None:
    """140 calls running and waiting for a second (a fan-out just submitted) are a load of
    about 13, not heavy (20); the same after a minute are."""
    loads = loads_of()
    demand = {"quiet": 0, "noisy": 140}
    loads.observe(0.0, demand, demand.__getitem__, lambda u: False)
    loads.observe(1.0, demand, demand.__getitem__, lambda u: False)
    assert loads.classify({"quiet": 0.5, "noisy": 0.5}) == (["quiet"], [])
    loads.observe(60.0, demand, demand.__getitem__, lambda u: False)
    assert loads.classify({"quiet": 0.5, "noisy": 0.5}) == (["quiet"], ["noisy"])


def test_the_average_follows_the_time_constant() -> None:
    """One tenant, its whole share 32: heavy from 40, light under 24. 44 calls from t=0:
    a load of 27.8 after one time constant (in the band), 38.0 after two, 44.0 after ten."""
    loads = loads_of()
    loads.observe(0.0, {"t": 0}, lambda u: 0, lambda u: False)
    for at, heavy in [(LOAD_TAU_S, []), (2 * LOAD_TAU_S, []), (10 * LOAD_TAU_S, ["t"])]:
        loads.observe(at, {"t": 44}, lambda u: 44, lambda u: False)
        assert loads.classify({"t": 1.0}) == ([], heavy), at


@pytest.mark.parametrize(("worker_budgets", "judging"), [
    ((16, 16), False),  # every worker within the isolation budget: nothing kept
    ((16, 1 << 20), True),
])
def test_loads_are_kept_only_while_a_worker_is_judged(
        worker_budgets: tuple[int, ...], judging: bool) -> None:
    loads = settled({"quiet": 0, "noisy": 400}, worker_budgets=worker_budgets)
    assert loads.judging is judging
    heavy = ["noisy"] if judging else []
    assert loads.classify({"quiet": 0.5, "noisy": 0.5}) == (["quiet"] + ([] if judging
                                                                      else ["noisy"]), heavy)


def test_a_tenant_gone_is_forgotten_unless_kept() -> None:
    """Shares of 16: 50 calls is heavy. A tenant no longer among those observed keeps its
    load while `keep` says so (it still runs calls), else its load is gone (light)."""
    loads = loads_of()
    both = {"a": 50, "b": 50}
    loads.observe(0.0, both, both.__getitem__, lambda u: False)
    loads.observe(100.0, both, both.__getitem__, lambda u: False)
    loads.observe(101.0, {"c": 0}, lambda u: 0, lambda u: u == "a")
    assert loads.classify({"a": 0.5, "b": 0.5}) == (["b"], ["a"])
