"""The soak harness at toy size (`make soak` runs it at 10,000 calls): every call gets one
outcome, the faults fire and the services come back, every service's memory is sampled,
and the verdicts and report are produced."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from bench.soak import Fault, SoakOptions, parse_faults, run_soak
from bench.soak_report import print_report


def test_faults_parse_in_order_and_bad_ones_are_refused() -> None:
    assert parse_faults("redis@0.5, worker@0.1") == [Fault("worker", 0.1), Fault("redis", 0.5)]
    assert parse_faults("") == []
    for bad in ("disk@0.1", "worker@1.5", "worker"):
        with pytest.raises(ValueError, match="--faults"):
            parse_faults(bad)


def test_small_soak_accounts_for_every_call() -> None:
    results = run_soak(SoakOptions(
        calls=300, concurrency=10, calls_per_program=5, workers=2,
        faults=(Fault("redis", 0.1), Fault("worker", 0.5)), down_s=0.2, semantic_cache=False,
        timeout_s=60, call_timeout_s=5, sample_every=0.1))
    calls = results["calls"]
    assert calls["with_outcome"] == 300 and sum(calls["by_outcome"].values()) == 300
    assert results["hung"] == 0 and not results["load_errors"]
    assert calls["ok"] > 0 and results["programs"]["total"] == 60
    assert [f["target"] for f in results["faults"]] == ["redis", "worker"]
    assert not results["faults_not_fired"]
    assert all(not f["error"] and f["back_at"] > f["down_at"] for f in results["faults"])
    services = results["memory"]["services"]
    assert set(services) == {"gateway", "planner", "redis", "worker-0", "worker-1", "engine-0",
                             "engine-1"}
    assert services["worker-0"]["processes"] == 2 and services["planner"]["processes"] == 1
    assert services["redis"]["processes"] == 2  # started again, on its port
    assert results["duplicates"]["engine_completed"] >= calls["ok"]  # summed over restarts
    assert results["summaries"]["programs"] + len(results["programs"]["end_failed_programs"]) == 60
    assert set(results["checks"]) >= {"every_call_accounted", "no_duplicates", "records_agree",
                                      "memory_flat"}
    json.dumps(results)
    console = Console(record=True, width=120)
    print_report(results, console)
    assert "calls by outcome" in console.export_text()


def test_one_call_soak_finds_each_call_in_a_program_of_its_own() -> None:
    results = run_soak(SoakOptions(
        calls=60, concurrency=6, one_call=True, workers=2, faults=(), semantic_cache=False,
        timeout_s=60, call_timeout_s=5, sample_every=0.25))
    assert results["calls"]["ok"] == 60 and results["programs"]["total"] == 0
    # each answered call's one-call program was written once it ended (read once settled)
    assert results["records"]["ok_not_done"] == 0
    assert results["one_call_records"]["programs"] >= 60
    assert results["one_call_records"]["calls_in_two_programs"] == 0
    assert results["checks"]["records_agree"] and results["checks"]["every_call_accounted"]
    console = Console(record=True, width=120)
    print_report(results, console)
    assert "one-call callers" in console.export_text()


def test_failures_are_attributed_to_the_latest_fault_they_overlap() -> None:
    from bench.soak import FaultEvent
    from bench.soak_checks import attribute
    from bench.soak_load import CallOutcome

    events = [FaultEvent("worker", 0.1, down_at=10.0, back_at=12.0),
              FaultEvent("gateway", 0.5, down_at=15.0, back_at=16.0)]
    cases = [((9.0, 10.5), ("worker", "in flight")), ((11.0, 11.5), ("worker", "down")),
             ((13.0, 13.1), ("worker", "after")), ((15.5, 15.6), ("gateway", "down")),
             ((30.0, 30.1), ("none", ""))]
    for (started, finished), expected in cases:
        assert attribute(CallOutcome("p", "c0", "UNAVAILABLE", started, finished), events) == expected


def test_memory_is_measured_from_the_latest_process_after_its_warmup() -> None:
    from bench.soak_checks import memory_report

    samples = [{"service": "planner", "pid": 1, "progress": p, "rss_kib": 1000} for p in (0, .1, .2)]
    samples += [{"service": "planner", "pid": 2, "progress": .3, "rss_kib": 500},
                {"service": "planner", "pid": 2, "progress": .4, "rss_kib": 60_000},
                {"service": "planner", "pid": 2, "progress": .5, "rss_kib": 80_000},
                {"service": "planner", "pid": 2, "progress": 1.0, "rss_kib": 90_000},
                {"service": "redis", "pid": 3, "progress": .95, "rss_kib": 9000},
                {"service": "redis", "pid": 3, "progress": 1.0, "rss_kib": 9000}]
    report = memory_report(samples, calls=1000, warmup=0.1, bound_mib=16, late_from=0.5,
                           late_bound_kib=256)
    planner = report["services"]["planner"]
    assert planner["processes"] == 2 and planner["window_calls"] == 600
    assert planner["base_mib"] == round(60_000 / 1024, 1) and planner["warmup_flat"] is False
    # the late window: 10,000 KiB over the last 500 calls
    assert planner["late_calls"] == 500 and planner["late_kib_per_1000_calls"] == 20_000
    assert planner["flat"] is False
    assert report["services"]["redis"]["flat"] is None  # started too late for a window
    assert report["flat"] is False and report["warmup_flat"] is False


def test_caches_filling_early_fail_only_the_first_rule() -> None:
    """Growth that stops (a cache reaching its bound) before the late window is flat there."""
    from bench.soak_checks import memory_report

    rss = {0: 70_000, .1: 70_000, .3: 100_000, .5: 100_100, .75: 100_000, 1.0: 100_200}
    samples = [{"service": "worker-0", "pid": 7, "progress": p, "rss_kib": k}
               for p, k in rss.items()]
    report = memory_report(samples, calls=10_000, warmup=0.1, bound_mib=16, late_from=0.5,
                           late_bound_kib=256)
    worker = report["services"]["worker-0"]
    assert worker["warmup_flat"] is False and worker["growth_mib"] == round(30_200 / 1024, 1)
    assert worker["late_calls"] == 5000 and worker["late_kib_per_1000_calls"] == 20.0
    assert worker["flat"] is True and report["flat"] is True and report["warmup_flat"] is False


def test_redis_is_judged_beyond_the_records_it_keeps() -> None:
    from bench.soak_checks import memory_report

    rows = [(0, 8000, 0), (.1, 9000, 1000), (.5, 20_000, 12_000), (1.0, 31_000, 23_000)]
    samples = [{"service": "redis", "pid": 3, "progress": p, "rss_kib": k, "data_kib": d}
               for p, k, d in rows]
    redis = memory_report(samples, calls=10_000, warmup=0.1, bound_mib=16, late_from=0.5,
                          late_bound_kib=256)["services"]["redis"]
    assert redis["late_kib_per_1000_calls"] == 2200 and redis["late_data_kib_per_1000_calls"] == 2200
    assert redis["late_beyond_data_kib_per_1000_calls"] == 0 and redis["flat"] is True
