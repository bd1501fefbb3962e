"""A worker's Prometheus metrics (GET /metrics on worker.metrics_port).

Per call (WorkerService.Generate measures it through a CallMeter): time to first token, time
per output token and request duration under their GenAI names, tokens (rate() of the
generated-token counter is tokens per second) and the outcome. Read from the worker's state
when scraped: in-flight calls and, with the engine's KV events, the blocks of its KV-index
entry against the engine's KV capacity, and the event stream's batches, gaps and
unattributed blocks. Every series carries the worker's id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tracing import genai
from workers.engine_output import EngineOutput
from workers.kv_event_listener import KvEventListener

OK, CANCELLED = "ok", "cancelled"  # call outcomes; a failed call's is its gRPC code's name


class WorkerState(Protocol):
    """What the collector reads from the worker (WorkerService)."""

    @property
    def running(self) -> int: ...

    @property
    def kv_events(self) -> KvEventListener | None: ...


class _StateCollector(Collector):
    def __init__(self, worker_id: str, state: WorkerState, kv_capacity_blocks: int) -> None:
        self._worker = worker_id
        self._state = state
        self._capacity = kv_capacity_blocks

    def collect(self) -> Iterator[Metric]:
        labels = ["worker"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric([self._worker], value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=labels)
            family.add_metric([self._worker], value)
            return family

        yield gauge("ostinato_worker_inflight_calls", "Calls streaming from the engine now.",
                    self._state.running)
        if self._capacity:
            yield gauge("ostinato_worker_kv_capacity_blocks", "The engine's KV pool in "
                        "KV-index blocks.", self._capacity)
        listener = self._state.kv_events
        if listener is None:
            return
        yield gauge("ostinato_worker_kv_index_blocks", "Blocks the engine holds, as its KV "
                    "events tell (the worker's KV-index entry).", listener.translator.index_blocks)
        yield counter("ostinato_worker_kv_event_batches", "KV event batches received.",
                      listener.stats.batches)
        yield counter("ostinato_worker_kv_event_gaps", "Sequence gaps in the KV event stream.",
                      listener.stats.gaps)
        yield counter("ostinato_worker_kv_blocks_unattributed", "Engine blocks no expected "
                      "request explains (not indexed).", listener.translator.stats.unattributed)
        yield counter("ostinato_worker_kv_blocks_unsent", "Engine blocks under a known parent "
                      "that no call of its tenants sent nor answered with (another tenant's, "
                      "under a page both sent; not indexed).", listener.translator.stats.unsent)


class WorkerMetrics:
    def __init__(self, worker_id: str, model: str = "",
                 registry: CollectorRegistry | None = None) -> None:
        self.worker_id = worker_id
        self.model = model
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        genai_labels = [genai.LABEL_OPERATION, genai.LABEL_PROVIDER, genai.LABEL_REQUEST_MODEL,
                        "worker"]
        self.ttft = Histogram(
            genai.METRIC_SERVER_TIME_TO_FIRST_TOKEN, "Time to the first output token of "
            "successful calls.", genai_labels, buckets=genai.TIME_TO_FIRST_TOKEN_BUCKETS,
            registry=r)
        self.tpot = Histogram(
            genai.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN, "Time per output token after the first, "
            "of successful calls.", genai_labels, buckets=genai.TIME_PER_OUTPUT_TOKEN_BUCKETS,
            registry=r)
        self.duration = Histogram(
            genai.METRIC_SERVER_REQUEST_DURATION, "Calls from arrival at the worker to their "
            "last token (error_type set when they failed).",
            [*genai_labels, genai.LABEL_ERROR_TYPE], buckets=genai.DURATION_BUCKETS, registry=r)
        self.calls = Counter(
            "ostinato_worker_calls", "Calls by outcome: ok, cancelled, or the gRPC status code "
            "of the failure.", ["worker", "outcome"], registry=r)
        self.tokens = Counter(
            "ostinato_worker_tokens", "Tokens of the worker's calls: prompt, cached (prompt "
            "tokens the engine's prefix cache served) and generated.", ["worker", "type"],
            registry=r)

        # each series' child, once used: labels() validates and looks them up every time
        # (5 a call: a fifth of the worker's own Python per call, session 32)
        self._children: dict[tuple[object, ...], Any] = {}

    def child(self, metric: Histogram | Counter, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: the series appears once first used, as there."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch(self, state: WorkerState, kv_capacity_blocks: int = 0) -> None:
        """Exports the worker's in-flight calls and KV state (once per registry)."""
        self.registry.register(_StateCollector(self.worker_id, state, kv_capacity_blocks))

    def call(self, timed_tokens: bool = True) -> CallMeter:
        """Starts timing a call. `timed_tokens`: the engine streams its tokens, so their
        times are seen (an answer taken once, at its end, has no time to first token)."""
        return CallMeter(self, timed_tokens)


class CallMeter:
    """One call's timings, from its start to `ok` or `failed`."""

    def __init__(self, metrics: WorkerMetrics, timed_tokens: bool = True) -> None:
        self._m = metrics
        self._timed_tokens = timed_tokens
        self._labels = (genai.TEXT_COMPLETION, genai.PROVIDER_SGLANG, metrics.model,
                        metrics.worker_id)
        self._start = time.monotonic()
        self._first: float | None = None
        self._last: EngineOutput | None = None

    def output(self, out: EngineOutput) -> None:
        if self._first is None and self._timed_tokens and (out.delta or out.completion_tokens):
            self._first = time.monotonic()
        self._last = out

    def ok(self, out: EngineOutput, end: float | None = None) -> None:
        """`end`: when its last token came (time.monotonic(); now by default)."""
        m, end = self._m, time.monotonic() if end is None else end
        if self._first is not None:
            m.child(m.ttft, *self._labels).observe(self._first - self._start)
            if out.completion_tokens > 1:
                m.child(m.tpot, *self._labels).observe(
                    (end - self._first) / (out.completion_tokens - 1))
        self._end(OK, "", end)

    def failed(self, outcome: str) -> None:
        """`outcome`: CANCELLED, or the gRPC status code's name."""
        self._end(outcome, outcome, time.monotonic())

    def _end(self, outcome: str, error_type: str, end: float) -> None:
        m, worker = self._m, self._m.worker_id
        m.child(m.duration, *self._labels, error_type).observe(end - self._start)
        m.child(m.calls, worker, outcome).inc()
        last = self._last
        if last is not None:
            m.child(m.tokens, worker, "prompt").inc(last.prompt_tokens)
            m.child(m.tokens, worker, "cached").inc(last.cached_tokens)
            m.child(m.tokens, worker, "generated").inc(last.completion_tokens)
