"""Sweep options (per-policy budgets, bare baselines) and the runs at 80% of the baseline's capacity."""

from __future__ import annotations

import pytest

from bench import sweep, sweep_runs
from bench.cluster import ClusterConfig
from bench.report import markdown
from bench.spec import SpecError, parse_spec
from bench.sweep import BARE_DEFAULT, SweepConfig, parse_budget, run_sweep
from planner.core.tenants import ISOLATION_FRACTION


@pytest.mark.parametrize(("text", "expected"), [
    ("128", (128, ())),
    ("256,default=64,clairvoyant=64", (256, (("default", 64), ("clairvoyant", 64)))),
    ("default=64", (32, (("default", 64),))),
    (" 16 , fcfs+round_robin=8 ", (16, (("fcfs+round_robin", 8),))),
    ("none", (0, ())),  # no cap: calls wait in the engines' queues, as behind a router
    ("none,default=64", (0, (("default", 64),))),
])
def test_budget_parses_a_default_and_per_policy_overrides(text: str, expected: tuple) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("lots", "expected N or POLICY=N"),
    ("default=many", "expected N or POLICY=N"),
    ("8,16", "two default budgets"),
])
def test_bad_budgets_name_the_flag(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_budget(text)


def test_a_budget_for_a_policy_not_swept_or_below_zero_is_refused() -> None:
    with pytest.raises(SpecError, match="not one of --policies"):
        SweepConfig(("default",), (1.0,), policy_budgets=(("clairvoyant", 4),)).validate()
    with pytest.raises(SpecError, match="default=-1"):
        SweepConfig(("default",), (1.0,), policy_budgets=(("default", -1),)).validate()


def test_no_budget_runs_the_planner_uncapped() -> None:
    cfg = SweepConfig(("default",), (1.0,), budget=sweep.NO_CAP)
    assert cfg.budget_for("default") is None
    _, cluster = sweep.cluster_for("default", cfg, parse_spec(chain_spec()))
    assert cluster.budget == sweep.ROUTER_BUDGET and cluster.program_kv_fraction > 0


def chain_spec() -> dict:
    return {"version": 1, "seed": 3, "programs": 60,
            "arrival": {"process": "poisson", "rate": 1.0},
            "classes": [{"name": "c", "shape": "chain", "calls": 3, "first_prompt_tokens": 400,
                         "step_prompt_tokens": 50, "output_tokens": 200, "think_time_s": 0.1}]}


def test_each_policy_runs_at_its_budget_and_the_targets_point_is_measured() -> None:
    cfg = SweepConfig(("fcfs+round_robin", "default", "clairvoyant"), (0.1, 1.0, 10.0),
                      engines=1, budget=2, policy_budgets=(("default", 4),), warmup_programs=0,
                      window_s=30.0, bare=frozenset())
    results = run_sweep(parse_spec(chain_spec()), cfg, progress=None)
    # every policy at every rate (the targets point's runs are apart, not in their place)
    assert sorted((r["policy"], r["rate"]) for r in results["runs"]) == sorted(
        (p, r) for p in cfg.policies for r in cfg.rates)
    budgets = {(r["policy"], r["budget_per_engine"]) for r in results["runs"]}
    assert budgets == {("fcfs+round_robin", 2), ("default", 4), ("clairvoyant", 2)}
    assert results["budget_per_policy"] == {"fcfs+round_robin": 2, "default": 4, "clairvoyant": 2}
    assert results["capacity_bounded"]["fcfs+round_robin"]  # 10/s overloads one engine
    point = results["at_80pct_of_baseline_capacity"]
    assert point["rate"] == pytest.approx(0.8 * results["capacity"]["fcfs+round_robin"], abs=1e-5)
    assert [r["policy"] for r in point["runs"]] == ["fcfs+round_robin", "default", "clairvoyant"]
    assert all(r["rate"] == point["rate"] for r in point["runs"])
    lat = {r["policy"]: r["program_latency_s"] for r in point["runs"]}
    assert point["p99_vs_baseline"]["fcfs+round_robin"] == 1.0
    assert point["p99_vs_baseline"]["default"] == pytest.approx(
        lat["default"]["p99"] / lat["fcfs+round_robin"]["p99"], abs=1e-4)
    assert point["mean_vs_clairvoyant"]["clairvoyant"] == 1.0
    text = markdown(results)
    assert "At 80% of `fcfs+round_robin`'s capacity" in text and "`default` 4" in text
    # the unloaded reference did not queue; one that did would say so (bench review F5)
    assert results["unloaded"]["loaded"] is False and "busy" not in text
    results["unloaded"].update(loaded=True, engine_utilization=0.92)
    assert "its engines were 92% busy: it queued" in markdown(results)


def test_no_targets_point_without_a_bounded_baseline_capacity() -> None:
    cfg = SweepConfig(("fcfs+round_robin",), (0.1,), engines=2, warmup_programs=0, window_s=30.0)
    results = run_sweep(parse_spec(chain_spec()), cfg, progress=None)
    assert results["at_80pct_of_baseline_capacity"] is None


ON = (ClusterConfig.program_kv_fraction, ISOLATION_FRACTION, "waiting")  # the planner's


@pytest.mark.parametrize(("bare", "policy", "controls"), [
    (BARE_DEFAULT, "fcfs+cache_aware", (0.0, 1.0, "off")),  # stands for SGLang's router: none
    (BARE_DEFAULT, "fcfs+round_robin", (0.0, 1.0, "off")),
    (BARE_DEFAULT, "default", ON),
    (frozenset(), "fcfs+cache_aware", ON),
])
def test_bare_policies_run_without_program_admission_and_tenant_shares(
        bare: frozenset[str], policy: str, controls: tuple) -> None:
    cfg = SweepConfig((policy,), (1.0,), bare=bare)
    _, cluster = sweep.cluster_for(policy, cfg, parse_spec(chain_spec()))
    assert (cluster.program_kv_fraction, cluster.isolation_fraction,
            cluster.tenant_shares) == controls


def test_a_bare_router_has_no_planner_budget() -> None:
    """SGLang's router and a Kubernetes Service send each call on as it comes; the engine's
    own max_running_requests and waiting queue do the rest. A planner cap in front of them
    (as the sweeps before session 52 had) leaves cache_aware choosing among free engines
    only, which is not the router's behaviour."""
    cfg = SweepConfig(("fcfs+cache_aware", "default"), (1.0,), budget=256)
    assert cfg.budget_for("fcfs+cache_aware") is None and cfg.budget_for("default") == 256
    _, router = sweep.cluster_for("fcfs+cache_aware", cfg, parse_spec(chain_spec()))
    _, planner = sweep.cluster_for("default", cfg, parse_spec(chain_spec()))
    assert router.budget == sweep.ROUTER_BUDGET and planner.budget == 256
    assert router.max_running_requests == planner.max_running_requests == 256
    with pytest.raises(SpecError, match="runs bare"):
        SweepConfig(("fcfs+cache_aware",), (1.0,), policy_budgets=(("fcfs+cache_aware", 8),)
                    ).validate()


def test_the_report_names_the_policies_run_bare() -> None:
    cfg = SweepConfig(("fcfs+round_robin", "default"), (0.1,), engines=1, warmup_programs=0,
                      window_s=30.0)
    results = run_sweep(parse_spec(chain_spec()), cfg, progress=None)
    assert results["bare_policies"] == ["fcfs+round_robin"] and results["unloaded_bare"]
    assert "SGLang's router): `fcfs+round_robin`." in markdown(results)


class _Flag:
    value = 0


def test_the_first_failed_run_stops_the_sweep_at_once() -> None:
    """Not after every other run has ended: the runs not started are cancelled, the running
    ones told to give up, and the failure raised."""
    from concurrent.futures import Future

    failed, running, queued = Future(), Future(), Future()  # type: ignore[var-annotated]
    running.set_running_or_notify_cancel()
    failed.set_exception(ValueError("run 1 failed"))
    stop = _Flag()
    with pytest.raises(ValueError, match="run 1 failed"):
        sweep_runs.wait_runs([running, failed, queued], stop, _Flag(), sweep_runs.Bar(1, None), poll_s=0)
    assert stop.value == 1 and queued.cancelled() and not running.done()


def test_a_run_gives_up_at_its_next_program_once_told() -> None:
    stop = _Flag()
    sweep_runs.init_worker(None, stop)
    try:
        sweep_runs.tick(1)  # not told: it goes on
        stop.value = 1
        with pytest.raises(sweep_runs.SweepStopped):
            sweep_runs.tick(1)
    finally:
        sweep_runs.init_worker(None, None)


def test_every_result_in_order_when_no_run_fails() -> None:
    from concurrent.futures import Future

    futures = [Future() for _ in range(3)]  # type: ignore[var-annotated]
    for i, f in enumerate(futures):
        f.set_result({"run": i})
    assert sweep_runs.wait_runs(futures, _Flag(), _Flag(), sweep_runs.Bar(1, None), poll_s=0) == [
        {"run": 0}, {"run": 1}, {"run": 2}]
