"""`ostinato bench planner`, tiny: the JSON's shape, and one grant per decision (no timings
are asserted: they are this machine's)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.planner_bench import BenchConfig, planner_bench, planner_command

TINY = BenchConfig(workers=4, budget=4, decisions=50, warmup=30, min_programs=40,
                   calls_per_program=10)


@pytest.mark.parametrize("policy", ["default", "fcfs+round_robin", "plas+cache_aware"])
def test_every_decision_grants_exactly_one_call_at_its_depth(policy: str) -> None:
    out = planner_bench((200,), (policy,), TINY)
    [run] = out["runs"]
    assert out["kind"] == "planner" and out["workers"] == 4
    assert run["policy"] == policy and run["queued"] == 200 and run["decisions"] == 50
    assert run["grants_per_decision"] == {"min": 1, "max": 1}
    assert run["decisions_granting_one"] == 50
    assert run["queued_after"] == 200  # one submitted per grant: the depth holds
    assert run["programs"] >= 40
    us = run["us_per_decision"]
    assert set(us) == {"p50", "p99", "p999", "mean", "max"}
    assert 0 < us["p50"] <= us["p99"] <= us["p999"] <= us["max"]
    assert run["warmup_decisions"] == 30
    # every timed decision is in the chunks, the warm-up's in its own
    assert [c["decisions"] for c in run["chunks"]] == [50]
    assert [c["decisions"] for c in run["warmup_chunks"]] == [30]
    window, inside = run["gc_runs_in_window"], run["gc_runs_in_decisions"]
    assert all(window[g] >= inside[g] for g in window)
    assert run["without_gc"]["decisions"] <= 50
    assert sum(run["gc_runs_in_decisions"].values()) >= 50 - run["without_gc"]["decisions"]
    parked = run["parked_per_decision"]
    assert 0 <= parked["p50"] <= parked["p99"] <= parked["max"]
    if policy != "default":  # no home to wait for
        assert parked["max"] == 0


def test_growth_across_depths_and_the_command_writes_its_json(tmp_path: Path) -> None:
    out_file = tmp_path / "planner.json"
    args = argparse.Namespace(queued="100,300", workers=4, decisions=20, warmup=10,
                              policies="fcfs+round_robin", out=str(out_file))
    out = planner_command(args)
    assert [r["queued"] for r in out["runs"]] == [100, 300]
    growth = out["growth"]["fcfs+round_robin"]
    assert growth["queue_x"] == 3.0 and growth["p50_x_at_300_vs_100"] > 0
    assert json.loads(out_file.read_text()) == out


@pytest.mark.parametrize(("queued", "policies"), [((), ("default",)), ((0,), ("default",)),
                                                  ((10,), ("nope+nothing",))])
def test_bad_arguments_are_refused(queued: tuple[int, ...], policies: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        planner_bench(queued, policies, TINY)


def test_the_bench_sets_the_collector_as_the_planner_service_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One GC setting for both (issue #17): the bench freezes its setup with the function the
    services call once started (ostinato/collector.py), and unfreezes after its run."""
    import gc

    import bench.planner_bench as pb
    import ostinato.collector
    import planner.main

    assert pb.freeze_after_start is ostinato.collector.freeze_after_start
    assert planner.main.freeze_after_start is ostinato.collector.freeze_after_start
    calls: list[int] = []
    real = pb.freeze_after_start
    monkeypatch.setattr(pb, "freeze_after_start", lambda: (calls.append(1), real())[1])
    pb.planner_bench((100,), ("default",), BenchConfig(workers=2, budget=2, decisions=5,
                                                       warmup=5, min_programs=10,
                                                       calls_per_program=10))
    assert calls == [1]
    assert gc.get_freeze_count() == 0


def test_the_warm_up_defaults_to_two_turns_of_the_queue() -> None:
    """Untimed decisions before the timed ones: the queue's steady state, not the setup's."""
    cfg = BenchConfig()
    assert cfg.decisions >= 90_000  # a full collection's period here: each generation in it
    assert cfg.warmup_for(1000) == 10_000 and cfg.warmup_for(100_000) == 200_000
    assert BenchConfig(warmup=0).warmup_for(100_000) == 0
    with pytest.raises(ValueError):
        BenchConfig(warmup=-1).validate()


@pytest.mark.parametrize(("program_calls", "ends"), [(0, False), (3, True)])
def test_programs_end_through_the_core_and_new_ones_take_their_slots(
        program_calls: int, ends: bool) -> None:
    """Issue #17: a program ends (PlannerCore.end_program) once its last call has ended, and
    a new one of the same tenant takes its slot: the slots' count and the depth hold."""
    from dataclasses import replace

    import bench.planner_bench as pb

    cfg = replace(TINY, program_calls=program_calls)
    driver = pb._Driver("default", 200, cfg)
    ended: list[str] = []
    before = driver.ended  # programs of one call or a few may end in the setup already
    real = driver.core.end_program
    driver.core.end_program = lambda pid, tenant: (ended.append(pid), real(pid, tenant))[1]
    tenants = [t for _, t in driver.programs]
    for _ in range(300):
        driver.decision()
    assert len(driver.programs) == 40 and [t for _, t in driver.programs] == tenants
    assert driver.core.queued == 200
    assert bool(ended) is ends and driver.ended == before + len(ended)
    open_now = {pid for pid in driver.live}
    assert driver.core.programs_open == len(open_now)
    assert not open_now & set(ended)
    if ends:  # every program still open either submits or has calls unfinished
        slots = {pid for pid, _ in driver.programs}
        assert all(pid in slots or driver.live[pid].open for pid in open_now)


def test_a_run_reports_the_programs_ended_and_the_collections_periods() -> None:
    from dataclasses import replace

    out = planner_bench((200,), ("default",), replace(TINY, program_calls=3))
    [run] = out["runs"]
    assert run["programs_in_window"]["ended"] > 0
    assert run["programs_in_window"]["registered"] > 0
    assert set(run["gc_period_decisions"]) == {"gen0", "gen1", "gen2"}
    assert run["tracked_per_cycle"] >= 0
    with pytest.raises(ValueError):
        planner_bench((200,), ("default",), BenchConfig(program_calls=-1))
