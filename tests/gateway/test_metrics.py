"""The gateway's metrics: what a call's result, failure or cancellation, a program's end and
an HTTP response move; the answer cache and tenancy read at scrape time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from cache.metrics import CacheMetrics
from cache.outage import RedisOutage
from gateway.metrics import CANCELLED, GatewayMetrics
from ostinato.v1 import common_pb2
from tests.prometheus_text import of_registry, value

MODEL = "sim/llama-3.1-8b"


def result(prompt: int, completion: int, cached: int, hit: int = common_pb2.CACHE_HIT_MISS
           ) -> common_pb2.CallResult:
    return common_pb2.CallResult(text="x", cache_hit=hit, usage=common_pb2.Usage(
        prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached))


def test_answered_calls_move_durations_token_usage_and_tenant_tokens() -> None:
    m = GatewayMetrics(MODEL)
    m.call_answered("acme", "chat", result(100, 20, 64), 0.3)
    m.call_answered("acme", "chat", result(50, 5, 0, common_pb2.CACHE_HIT_EXACT), 0.01)
    m.call_answered("globex", "text_completion", result(10, 1, 0), 0.05)
    s = of_registry(m.registry)
    assert value(s, "ostinato_calls_total", tenant="acme", outcome="ok") == 2
    assert value(s, "ostinato_call_duration_seconds_count", tenant="acme", cache="miss") == 1
    assert value(s, "ostinato_call_duration_seconds_count", tenant="acme", cache="exact") == 1
    assert value(s, "ostinato_call_duration_seconds_sum", tenant="acme") == pytest.approx(0.31)
    assert value(s, "ostinato_tenant_tokens_total", tenant="acme", type="input") == 150
    assert value(s, "ostinato_tenant_tokens_total", tenant="acme", type="output") == 25
    assert value(s, "ostinato_tenant_tokens_total", tenant="acme", type="cached") == 64
    chat = {"gen_ai_operation_name": "chat", "gen_ai_request_model": MODEL,
            "gen_ai_provider_name": "ostinato"}
    assert value(s, "gen_ai_client_operation_duration_seconds_count", error_type="", **chat) == 2
    assert value(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **chat) == 150
    assert value(s, "gen_ai_client_token_usage_count", gen_ai_token_type="output", **chat) == 2
    # the GenAI conventions' token buckets: 1, 4, 16, 64, 256 ...
    assert value(s, "gen_ai_client_token_usage_bucket", gen_ai_token_type="input", le="64.0",
                 **chat) == 1
    assert value(s, "gen_ai_client_token_usage_bucket", gen_ai_token_type="input", le="256.0",
                 **chat) == 2


@pytest.mark.parametrize("outcome", ["RESOURCE_EXHAUSTED", "UNAVAILABLE", CANCELLED])
def test_failed_and_cancelled_calls_count_by_outcome(outcome: str) -> None:
    m = GatewayMetrics(MODEL)
    m.call_failed("acme", "chat", outcome, 0.2)
    s = of_registry(m.registry)
    assert value(s, "ostinato_calls_total", tenant="acme", outcome=outcome) == 1
    assert value(s, "gen_ai_client_operation_duration_seconds_count", error_type=outcome) == 1
    assert value(s, "ostinato_call_duration_seconds_count") == 0  # answered calls only


def test_program_durations_and_http_responses() -> None:
    m = GatewayMetrics(MODEL)
    m.program_ended("acme", 12.5)
    m.http_response("/v1/chat/completions", 200)
    m.http_response("/v1/chat/completions", 429)
    s = of_registry(m.registry)
    assert value(s, "ostinato_program_duration_seconds_count", tenant="acme") == 1
    assert value(s, "ostinato_program_duration_seconds_sum", tenant="acme") == 12.5
    assert value(s, "ostinato_http_responses_total", route="/v1/chat/completions",
                 status="429") == 1


def test_cache_counters_redis_health_and_tenancy_are_read_when_scraped() -> None:
    cache_metrics = CacheMetrics()
    cache = SimpleNamespace(metrics=cache_metrics, index=[1, 2, 3])
    stale = [False]
    m = GatewayMetrics(MODEL, CollectorRegistry())
    m.watch(cache, lambda: stale[0])  # type: ignore[arg-type]
    cache_metrics.count("hit_exact")
    cache_metrics.count("miss", 3)
    cache_metrics.lookup_ms(4.0)
    cache_metrics.lookup_ms(30.0)
    s = of_registry(m.registry)
    assert value(s, "ostinato_cache_events_total", event="hit_exact") == 1
    assert value(s, "ostinato_cache_events_total", event="miss") == 3
    assert value(s, "ostinato_cache_lookup_seconds_count") == 2
    assert value(s, "ostinato_cache_lookup_seconds_bucket", le="0.005") == 1
    assert value(s, "ostinato_cache_index_entries") == 3
    assert value(s, "ostinato_cache_redis_up") == 1 and value(s, "ostinato_tenancy_stale") == 0
    cache_metrics.redis_up, stale[0] = False, True
    s = of_registry(m.registry)
    assert value(s, "ostinato_cache_redis_up") == 0 and value(s, "ostinato_tenancy_stale") == 1
    assert cache_metrics.percentile_ms(0.99) == 30.0  # the CacheStats RPC's view is kept


def test_what_a_redis_outage_cost_is_read_when_scraped() -> None:
    outage, unmetered = RedisOutage(clock=lambda: 0.0), [0]
    m = GatewayMetrics(MODEL, CollectorRegistry())
    m.watch(None, lambda: True, outage, lambda: unmetered[0])
    outage.failed()
    assert outage.skip() and outage.skip()
    unmetered[0] = 3
    s = of_registry(m.registry)
    assert value(s, "ostinato_redis_skipped_operations_total") == 2
    assert value(s, "ostinato_quota_unmetered_calls_total") == 3


def test_without_a_cache_only_tenancy_is_exported() -> None:
    m = GatewayMetrics(MODEL)
    m.watch(None, lambda: False)
    s = of_registry(m.registry)
    assert value(s, "ostinato_tenancy_stale") == 0
    assert not any(name.startswith("ostinato_cache_events") for name, _ in s)
