"""Metrics of the worker (over a real sim engine process, reporting to a recording planner)
and of the sim engine (SGLang's names, through prometheus_client)."""

from __future__ import annotations

import asyncio

import aiohttp
import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ostinato.config import SimEngineConfig
from ostinato.v1 import common_pb2, planner_pb2, worker_pb2
from tests.prometheus_text import Samples, of_registry, parse, value
from tests.workers.test_service import story, worker_on_loopback
from workers.sim.server import build_app

MODEL = "sim/llama-3.1-8b"


async def _scrape(client: TestClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return parse(await resp.text())


async def test_sim_engine_exports_sglang_names_and_its_counters_move() -> None:
    async with TestClient(TestServer(build_app(SimEngineConfig(zero_cost=True)))) as client:
        before = await _scrape(client)
        sp = {"max_new_tokens": 5, "ignore_eos": True}
        for _ in range(2):  # the second request finds the first's prompt cached
            resp = await client.post("/generate", json={"text": "one two three four five six",
                                                        "sampling_params": sp})
            assert resp.status == 200
        after = await _scrape(client)
    labels = {"model_name": MODEL, "simulated": "true"}
    assert value(before, "sglang:num_requests_total", **labels) == 0
    assert value(after, "sglang:num_requests_total", **labels) == 2
    assert value(after, "sglang:generation_tokens_total", **labels) == 10
    prompt = value(after, "sglang:prompt_tokens_total", **labels)
    cached = value(after, "sglang:cached_tokens_total", **labels)
    assert prompt > 0 and cached > 0
    assert value(after, "sglang:cache_hit_rate", **labels) == pytest.approx(cached / prompt)
    for gauge in ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage"):
        assert (gauge, frozenset(labels.items())) in after


async def test_two_sim_engines_in_one_process_keep_their_own_metrics() -> None:
    async with TestClient(TestServer(build_app(SimEngineConfig(zero_cost=True)))) as a, \
            TestClient(TestServer(build_app(SimEngineConfig(zero_cost=True)))) as b:
        resp = await a.post("/generate", json={"text": "hi", "sampling_params": {
            "max_new_tokens": 1}})
        assert resp.status == 200
        assert value(await _scrape(a), "sglang:num_requests_total") == 1
        assert value(await _scrape(b), "sglang:num_requests_total") == 0


async def test_worker_times_its_calls_and_counts_tokens_and_outcomes(sim_engine_url: str) -> None:
    async with worker_on_loopback(sim_engine_url, 0) as (stub, service, _):
        service.metrics.watch(service, kv_capacity_blocks=1000)
        before = of_registry(service.metrics.registry)
        chunks = [c async for c in stub.Generate(story("m1", 30))]
        usage = chunks[-1].result.usage
        with pytest.raises(grpc.aio.AioRpcError) as err:  # the engine refuses it: 400
            async for _ in stub.Generate(worker_pb2.GenerateRequest(
                    program_id="p1", call_id="bad", prompt="x",
                    sampling=common_pb2.SamplingParams(min_p=2.0))):
                pass
        after = of_registry(service.metrics.registry)
        await service.drain_reports()
    code = err.value.code().name
    w = {"worker": "w-test"}
    assert value(before, "ostinato_worker_inflight_calls", **w) == 0
    assert value(after, "ostinato_worker_kv_capacity_blocks", **w) == 1000
    assert value(after, "ostinato_worker_calls_total", outcome="ok", **w) == 1
    assert value(after, "ostinato_worker_calls_total", outcome=code, **w) == 1
    assert value(after, "ostinato_worker_tokens_total", type="generated", **w) == 30
    assert value(after, "ostinato_worker_tokens_total", type="prompt", **w) == usage.prompt_tokens
    assert value(after, "gen_ai_server_time_to_first_token_seconds_count", **w) == 1
    assert value(after, "gen_ai_server_time_per_output_token_seconds_count", **w) == 1
    assert value(after, "gen_ai_server_request_duration_seconds_count", error_type="", **w) == 1
    assert value(after, "gen_ai_server_request_duration_seconds_count", error_type=code, **w) == 1
    assert value(after, "gen_ai_server_time_to_first_token_seconds_count",
                 gen_ai_operation_name="text_completion", gen_ai_provider_name="sglang") == 1


async def test_a_call_the_engine_answers_once_has_no_time_to_first_token(
        sim_engine_url: str) -> None:
    # taken whole and short, it is asked of the engine unstreamed: its one output comes at
    # the end, which is no first token's time
    async with worker_on_loopback(sim_engine_url, 50) as (stub, service, _):
        request = story("w1", 10)
        request.whole = True
        assert not service._streams(request)
        chunks = [c async for c in stub.Generate(request)]
        assert chunks[-1].result.usage.completion_tokens == 10
        after = of_registry(service.metrics.registry)
        await service.drain_reports()
    w = {"worker": "w-test"}
    assert value(after, "ostinato_worker_calls_total", outcome="ok", **w) == 1
    assert value(after, "gen_ai_server_request_duration_seconds_count", error_type="", **w) == 1
    assert value(after, "gen_ai_server_time_to_first_token_seconds_count", **w) == 0
    assert value(after, "gen_ai_server_time_per_output_token_seconds_count", **w) == 0


async def test_worker_counts_a_call_its_caller_cancelled(sim_engine_url: str) -> None:
    async with worker_on_loopback(sim_engine_url, 0) as (stub, service, recorder):
        call = stub.Generate(story("gone", 100_000))
        async for _ in call:  # the first chunk: the call is streaming
            assert value(of_registry(service.metrics.registry),
                         "ostinato_worker_calls_total") == 0
            break
        call.cancel()
        async with asyncio.timeout(10):  # until the worker has seen the cancellation
            while not value(of_registry(service.metrics.registry), "ostinato_worker_calls_total"):
                await asyncio.sleep(0.01)
        await service.drain_reports()
        s = of_registry(service.metrics.registry)
    assert value(s, "ostinato_worker_calls_total", outcome="cancelled") == 1
    assert value(s, "gen_ai_server_request_duration_seconds_count", error_type="cancelled") == 1
    assert [r.status for r in recorder.completions] == [planner_pb2.COMPLETION_STATUS_CANCELLED]


async def test_sim_engine_metrics_over_http(sim_engine_url: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(sim_engine_url + "/metrics") as resp:
        samples = parse(await resp.text())
    assert ("sglang:num_running_reqs", frozenset({("model_name", MODEL),
                                                  ("simulated", "true")})) in samples
