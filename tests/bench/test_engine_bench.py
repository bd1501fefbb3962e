"""`ostinato bench engine`: bench_serving's random workload and metrics, over HTTP against a
real sim-engine process and in virtual time."""

from __future__ import annotations

import asyncio
import math

import pytest

from bench.engine_bench import Outcome, metrics, random_requests, run_http, run_virtual


def test_random_workload_is_bench_servings() -> None:
    reqs = random_requests(50, 100, 20, 0.5, float("inf"), seed=3, vocab_size=1000)
    assert reqs == random_requests(50, 100, 20, 0.5, float("inf"), seed=3, vocab_size=1000)
    assert all(50 <= len(r.input_ids) <= 100 and 10 <= r.output_len <= 20 for r in reqs)
    assert all(r.arrival_s == 0.0 for r in reqs)  # inf: all at once
    paced = random_requests(200, 10, 5, 1.0, 20.0, seed=3, vocab_size=1000)
    assert all(len(r.input_ids) == 10 and r.output_len == 5 for r in paced)
    assert 200 / paced[-1].arrival_s == pytest.approx(20.0, rel=0.25)  # Poisson at 20/s


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"num_prompts": 0}, "num-prompts"), ({"range_ratio": 2.0}, "range-ratio"),
    ({"request_rate": 0.0}, "request-rate"),
])
def test_bad_workloads_name_the_flag(kwargs: dict, needle: str) -> None:
    args = {"num_prompts": 1, "input_len": 1, "output_len": 1, "range_ratio": 0.0,
            "request_rate": math.inf, "seed": 0, "vocab_size": 100, **kwargs}
    with pytest.raises(ValueError, match=needle):
        random_requests(**args)


def test_metrics_use_bench_servings_definitions() -> None:
    a = Outcome(10, output_len=3, ttft_s=0.1, latency_s=0.3, itl_s=[0.1, 0.1], success=True)
    b = Outcome(20, output_len=1, ttft_s=0.2, latency_s=0.2, success=True)
    failed = Outcome(5, error="boom")
    m = metrics([a, b, failed], duration_s=1.0)
    assert (m["completed"], m["failed"], m["total_input_tokens"], m["total_output_tokens"]) == (2, 1, 30, 4)
    assert m["mean_ttft_ms"] == pytest.approx(150.0) and m["median_itl_ms"] == pytest.approx(100.0)
    assert m["mean_tpot_ms"] == pytest.approx(100.0)  # (latency - ttft) / (output - 1), a only
    assert m["output_throughput"] == pytest.approx(4.0) and m["request_throughput"] == pytest.approx(2.0)


def test_virtual_run_serves_every_request() -> None:
    reqs = random_requests(40, 512, 64, 1.0, 50.0, seed=1, vocab_size=32000)
    outcomes, duration = run_virtual("h100-llama3.1-8b", reqs, max_concurrency=8)
    assert all(o.success and o.output_len == 64 for o in outcomes)
    assert all(len(o.itl_s) == 63 and 0 < o.ttft_s < o.latency_s for o in outcomes)
    assert duration >= reqs[-1].arrival_s


def test_http_run_against_a_sim_engine_process(sim_engine_url: str) -> None:
    reqs = random_requests(6, 64, 8, 1.0, float("inf"), seed=2, vocab_size=1000)
    outcomes, duration = asyncio.run(run_http(sim_engine_url, reqs, max_concurrency=3))
    assert all(o.success and o.output_len == 8 and len(o.itl_s) == 7 and o.simulated
               for o in outcomes), outcomes
    m = metrics(outcomes, duration)
    assert m["completed"] == 6 and m["total_output_tokens"] == 48
