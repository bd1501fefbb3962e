"""Steady-state runs: measured windows, horizons, stability, and capacity refusing a rate
that only a finite run's draining backlog makes look fine. SIMULATED (virtual time)."""

from __future__ import annotations

import pytest

from bench.cluster import ClusterConfig, ClusterSim
from bench.programs import generate, stream
from bench.results import capacity, stable_window, summarize, sustained_throughput
from bench.sim_run import SteadyState
from bench.spec import parse_spec
from bench.sweep import SweepConfig, _point_ratios, run_one, steady_state
from workers.sim.cost_model import load_profile

PROFILE = load_profile("h100-llama3.1-8b")
ONE_ENGINE = ClusterConfig(engines=1, budget=1)  # one call at a time: service is serial


def one_call_spec(rate: float, programs: int = 10) -> dict:
    return {"version": 1, "seed": 11, "programs": programs,
            "arrival": {"process": "uniform", "rate": rate},
            "classes": [{"name": "c", "shape": "chain", "calls": 1, "first_prompt_tokens": 200,
                         "output_tokens": 100}]}


def service_s() -> float:
    """One program alone on the engine: its latency is the engine's service time."""
    run = ClusterSim(generate(parse_spec(one_call_spec(0.01, programs=1))), "fcfs+round_robin",
                     PROFILE, ONE_ENGINE).run()
    return run.outcomes[0].finished - run.outcomes[0].plan.arrival


def test_only_programs_arriving_in_the_window_are_measured_and_the_run_stops_when_they_end() -> None:
    s = service_s()
    rate = 0.5 / s  # half the engine: nothing waits long
    steady = SteadyState((20 * s, 60 * s), 1000 * s)
    run = ClusterSim(stream(parse_spec(one_call_spec(rate))), "fcfs+round_robin", PROFILE,
                     ONE_ENGINE, steady=steady).run()
    measured = [o for o in run.outcomes if o.measured]
    assert measured and all(steady.measures(o.plan.arrival) for o in measured)
    assert all(o.finished >= 0 for o in measured)
    assert len(run.outcomes) > len(measured)  # programs kept arriving around the window
    last = max(o.finished for o in measured)
    assert run.simulated_s == pytest.approx(last, abs=1.0 / rate)  # not the horizon
    result = summarize(run, "fcfs+round_robin", rate)
    assert result["stable"] and result["measured_programs"] == len(measured)
    assert result["measured_completed"] == result["completed"] == len(measured)
    assert result["per_class"]["c"]["measured"] == len(measured)
    assert result["window_s"] == [pytest.approx(20 * s), pytest.approx(60 * s)]


def test_a_program_still_running_at_the_horizon_is_not_completed() -> None:
    s = service_s()
    rate = 3.0 / s  # three times what the engine serves
    steady = SteadyState((10 * s, 20 * s), 40 * s)
    run = ClusterSim(stream(parse_spec(one_call_spec(rate))), "fcfs+round_robin", PROFILE,
                     ONE_ENGINE, steady=steady).run()
    result = summarize(run, "fcfs+round_robin", rate)
    assert run.simulated_s == pytest.approx(40 * s, rel=0.05)
    assert 0 < result["measured_completed"] < result["measured_programs"]
    assert not result["stable"]


def test_capacity_refuses_an_overloaded_rate_that_a_finite_run_passes() -> None:
    s = service_s()
    cfg = SweepConfig(("fcfs+round_robin",), (0.5 / s, 1.3 / s), engines=1, budget=1,
                      warmup_programs=0, window_s=60 * s, bare=frozenset())  # one at a time
    spec = parse_spec(one_call_spec(1.0))
    unloaded = run_one(spec, "fcfs+round_robin", 0.05 / s, cfg)
    limit = 5 * unloaded["normalized_latency_s_per_token"]["mean"]
    over = 1.3 / s  # 30% more than the engine serves
    # A finite batch of 10 programs at that rate drains its short backlog within the SLO...
    finite = run_one(spec, "fcfs+round_robin", over, cfg)
    assert finite["completed"] == 10
    assert finite["normalized_latency_s_per_token"]["mean"] <= limit
    # ...but arrivals that keep coming outrun the engine: the steady-state run is unstable.
    steady = steady_state(unloaded["program_latency_s"]["p99"], cfg.window_s)
    light = run_one(spec, "fcfs+round_robin", 0.5 / s, cfg, steady=steady)
    heavy = run_one(spec, "fcfs+round_robin", over, cfg, steady=steady)
    assert light["stable"] and not heavy["stable"]
    assert heavy["window_completions_per_s"] < 0.95 * heavy["window_arrivals_per_s"]
    finite_view = [(0.5 / s, light["normalized_latency_s_per_token"]["mean"], True),
                   (over, finite["normalized_latency_s_per_token"]["mean"], True)]
    assert capacity(finite_view, limit) == (over, False)  # what a finite run would claim
    points = [(0.5 / s, light["normalized_latency_s_per_token"]["mean"], light["stable"]),
              (over, heavy["normalized_latency_s_per_token"]["mean"], heavy["stable"])]
    assert capacity(points, limit) == (0.5 / s, True)


@pytest.mark.parametrize(("arrivals", "completions", "stable"), [
    (6400, 6400, True),
    (6400, 6241, True),  # grew by 159 <= 2 x 80
    (6400, 6100, False),  # 0.953 of arrivals (the spec's ratio passes) but grew by 300
    (100, 95, True),  # a short window: the ratio binds (5 <= 20)
    (100, 94, False),  # the ratio
    (0, 0, True),
])
def test_a_stable_window_keeps_its_backlog_within_noise(arrivals: int, completions: int,
                                                        stable: bool) -> None:
    assert stable_window(arrivals, completions) is stable


def test_a_queue_growing_by_a_few_percent_is_unstable() -> None:
    """Arrivals 4% past what one engine serves, a window of ~3,000 of them: the spec's
    ratio alone reads it stable (the backlog grows by 4% of arrivals); its growth is past
    Poisson noise (bench review 2026-12-07)."""
    s = service_s()
    rate = 1.04 / s
    steady = SteadyState((10 * s, 3010 * s), 3400 * s)
    run = ClusterSim(stream(parse_spec(one_call_spec(rate))), "fcfs+round_robin", PROFILE,
                     ONE_ENGINE, steady=steady).run()
    result = summarize(run, "fcfs+round_robin", rate)
    assert result["measured_completed"] == result["measured_programs"] > 3000
    ratio = result["window_completions_per_s"] / result["window_arrivals_per_s"]
    assert 0.95 <= ratio < 0.97  # what workload-spec.md's rule alone passes
    assert result["window_backlog_growth"] > result["window_backlog_limit"]
    assert not result["stable"]


@pytest.mark.parametrize(("points", "expected"), [
    ([(4.0, True), (8.0, True), (12.0, True)], 12.0),
    ([(4.0, True), (8.0, False), (12.0, True)], 4.0),  # a stable rate above an unstable one
    ([(12.0, True), (4.0, True), (8.0, False)], 4.0),  # (in any order)
    ([(4.0, False), (8.0, True)], 0.0),
    ([], 0.0),
])
def test_sustained_throughput_walks_up_the_rates(points: list[tuple[float, bool]],
                                                  expected: float) -> None:
    """Bench review 2026-12-08 F3: the highest stable rate was taken even above an
    unstable one (12 given unstable at 8), where capacity's rule stops."""
    assert sustained_throughput(points) == expected


def _point_run(policy: str, p99: float, stable: bool = True, completed: int = 10) -> dict:  # type: ignore[type-arg]
    return {"policy": policy, "stable": stable, "programs": 10, "completed": completed,
            "program_latency_s": {"p99": p99, "mean": p99 / 2}}


@pytest.mark.parametrize(("runs", "p99", "mean"), [
    ([_point_run("fcfs+round_robin", 4.0), _point_run("default", 2.0),
      _point_run("clairvoyant", 2.0)],
     {"fcfs+round_robin": 1.0, "default": 0.5, "clairvoyant": 0.5},
     {"fcfs+round_robin": 2.0, "default": 1.0, "clairvoyant": 1.0}),
    # an unstable run, or one with programs unfinished: no ratio of it, nor against it
    ([_point_run("fcfs+round_robin", 4.0), _point_run("default", 1.0, stable=False),
      _point_run("clairvoyant", 2.0, completed=9)],
     {"fcfs+round_robin": 1.0, "default": None, "clairvoyant": None},
     {"fcfs+round_robin": None, "default": None, "clairvoyant": None}),
])
def test_the_points_ratios_are_of_whole_stable_runs_only(
        runs: list[dict], p99: dict, mean: dict) -> None:  # type: ignore[type-arg]
    ratios = _point_ratios(runs)
    assert (ratios["p99_vs_baseline"], ratios["mean_vs_clairvoyant"]) == (p99, mean)
