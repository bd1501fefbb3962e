"""The gateway's Prometheus metrics (GET /metrics on gateway.metrics_port, not on the
public HTTP port: tenant labels are for the operator).

Programs and calls are observed by the instrumented call path (gateway/spans.py calls
`program_ended`, `call_answered`, `call_failed`), HTTP responses by the HTTP API; the answer
cache's counters, Redis health and the tenancy snapshot's staleness are read from their
state at scrape time. Labels never carry program or call ids (unbounded); tenants are
bounded by the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cache.answers import AnswerCache
from cache.modes import hit_header
from cache.outage import RedisOutage
from ostinato.v1 import common_pb2
from tracing import genai

PROGRAM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                   3600.0)
CACHE_LOOKUP_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
OK, CANCELLED = "ok", "cancelled"  # call outcomes; a failed call's is its gRPC code's name


class _StateCollector(Collector):
    """What is read from the gateway's state when scraped."""

    def __init__(self, cache: AnswerCache | None, tenancy_stale: Callable[[], bool],
                 outage: RedisOutage | None, unmetered: Callable[[], int],
                 early_starts: Callable[[], tuple[int, int]]) -> None:
        self._cache = cache
        self._early_starts = early_starts
        self._stale = tenancy_stale
        self._outage = outage
        self._unmetered = unmetered

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ostinato_tenancy_stale", "1 while Redis is unreachable and the "
                                "last tenancy snapshot serves.", value=int(self._stale()))
        yield CounterMetricFamily("ostinato_quota_unmetered_calls", "Calls served without "
                                  "their tenant's quotas taken, or their completion tokens "
                                  "not charged: Redis did not answer.",
                                  value=self._unmetered())
        early = CounterMetricFamily("ostinato_early_starts", "Calls started on a worker "
                                    "ahead of their grant (gateway/early_guess.py), by whether "
                                    "the grant named that worker (confirmed) or not (missed: "
                                    "that run cancelled).", labels=["outcome"])
        confirmed, missed = self._early_starts()
        early.add_metric(["confirmed"], confirmed)
        early.add_metric(["missed"], missed)
        yield early
        if self._outage is not None:
            yield CounterMetricFamily("ostinato_redis_skipped_operations", "Redis operations "
                                      "not sent because their Redis node was out of reach "
                                      "(under a second before, or while one probe tries it; "
                                      "their callers went on without it).",
                                      value=self._outage.skipped)
        cache = self._cache
        if cache is None:
            return
        events = CounterMetricFamily("ostinato_cache_events", "Answer-cache events: hits, "
                                     "misses, rejected near-misses, Redis errors.",
                                     labels=["event"])
        for name, n in sorted(cache.metrics.counts.items()):
            events.add_metric([name], n)
        yield events
        yield GaugeMetricFamily("ostinato_cache_redis_up", "0 after a Redis operation failed, "
                                "1 once one succeeds.", value=int(cache.metrics.redis_up))
        yield GaugeMetricFamily("ostinato_cache_index_entries", "Entries in the semantic "
                                "cache's index.", value=len(cache.index))


class GatewayMetrics:
    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.model = model
        # (tenant, operation, cache hit) -> the series an answered call counts in, each
        # looked up once (eight `labels()` lookups a call were ~85 us of the gateway's
        # call path at 200 calls/s: issue #19's profile)
        self._answered: dict[tuple[str, str, int], _AnsweredSeries] = {}
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.program_duration = Histogram(
            "ostinato_program_duration_seconds", "Programs from start to end.", ["tenant"],
            buckets=PROGRAM_BUCKETS, registry=r)
        self.call_duration = Histogram(
            "ostinato_call_duration_seconds", "Answered calls, from arrival at the gateway to "
            "their result (queue, engine and cache lookup included), by answer-cache hit.",
            ["tenant", "cache"], buckets=genai.DURATION_BUCKETS, registry=r)
        self.operation_duration = Histogram(
            genai.METRIC_CLIENT_OPERATION_DURATION, "GenAI operation duration (every call, "
            "error_type set when it failed).",
            [genai.LABEL_OPERATION, genai.LABEL_PROVIDER, genai.LABEL_REQUEST_MODEL,
             genai.LABEL_ERROR_TYPE], buckets=genai.DURATION_BUCKETS, registry=r)
        self.token_usage = Histogram(
            genai.METRIC_CLIENT_TOKEN_USAGE, "Input and output tokens of each answered call.",
            [genai.LABEL_OPERATION, genai.LABEL_PROVIDER, genai.LABEL_REQUEST_MODEL,
             genai.LABEL_TOKEN_TYPE], buckets=genai.TOKEN_USAGE_BUCKETS, registry=r)
        self.tenant_tokens = Counter(
            "ostinato_tenant_tokens", "Tokens per tenant: input (prompt), output (completion), "
            "cached (prompt tokens the engine's prefix cache served).", ["tenant", "type"],
            registry=r)
        self.calls = Counter(
            "ostinato_calls", "Calls by tenant and outcome: ok, cancelled (the caller went "
            "away), or the gRPC status code of the failure.", ["tenant", "outcome"], registry=r)
        self.http_responses = Counter(
            "ostinato_http_responses", "HTTP API responses by route and status.",
            ["route", "status"], registry=r)
        self.cache_lookup = Histogram(
            "ostinato_cache_lookup_seconds", "Answer-cache lookup latency, embedding included.",
            buckets=CACHE_LOOKUP_BUCKETS, registry=r)

    def watch(self, cache: AnswerCache | None, tenancy_stale: Callable[[], bool],
              outage: RedisOutage | None = None,
              unmetered: Callable[[], int] = lambda: 0,
              early_starts: Callable[[], tuple[int, int]] = lambda: (0, 0)) -> None:
        """Exports the cache's counters, the tenancy's staleness, what Redis's outages cost
        (`outage`: the client's, cache/outage.py; `unmetered`: calls served unmetered;
        `early_starts`: calls started ahead of their grant, confirmed and missed) (once per
        registry)."""
        self.registry.register(_StateCollector(cache, tenancy_stale, outage, unmetered,
                                               early_starts))
        if cache is not None:
            cache.metrics.on_lookup_s = self.cache_lookup.observe

    def program_ended(self, tenant: str, elapsed_s: float) -> None:
        self.program_duration.labels(tenant).observe(elapsed_s)

    def call_answered(self, tenant: str, operation: str, result: common_pb2.CallResult,
                      seconds: float) -> None:
        usage = result.usage
        series = self._answered.get((tenant, operation, result.cache_hit))
        if series is None:
            series = self._answered[(tenant, operation, result.cache_hit)] = _AnsweredSeries(
                self, tenant, operation, hit_header(result.cache_hit))
        series.calls.inc()
        series.call_duration.observe(seconds)
        series.operation_duration.observe(seconds)
        series.input_usage.observe(usage.prompt_tokens)
        series.output_usage.observe(usage.completion_tokens)
        series.input_tokens.inc(usage.prompt_tokens)
        series.output_tokens.inc(usage.completion_tokens)
        series.cached_tokens.inc(usage.cached_tokens)

    def call_failed(self, tenant: str, operation: str, outcome: str, seconds: float) -> None:
        """`outcome`: CANCELLED, or the gRPC status code's name."""
        self.calls.labels(tenant, outcome).inc()
        self.operation_duration.labels(operation, genai.PROVIDER_OSTINATO, self.model,
                                       outcome).observe(seconds)

    def http_response(self, route: str, status: int) -> None:
        self.http_responses.labels(route, str(status)).inc()


class _AnsweredSeries:
    """The series of one (tenant, operation, cache hit) that `call_answered` counts in."""

    def __init__(self, metrics: GatewayMetrics, tenant: str, operation: str, hit: str) -> None:
        genai_labels = (operation, genai.PROVIDER_OSTINATO, metrics.model)
        self.calls = metrics.calls.labels(tenant, OK)
        self.call_duration = metrics.call_duration.labels(tenant, hit)
        self.operation_duration = metrics.operation_duration.labels(*genai_labels, "")
        self.input_usage = metrics.token_usage.labels(*genai_labels, "input")
        self.output_usage = metrics.token_usage.labels(*genai_labels, "output")
        self.input_tokens = metrics.tenant_tokens.labels(tenant, "input")
        self.output_tokens = metrics.tenant_tokens.labels(tenant, "output")
        self.cached_tokens = metrics.tenant_tokens.labels(tenant, "cached")
