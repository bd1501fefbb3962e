"""The sim engine's Prometheus metrics: SGLang's names (`sglang:*`, label `model_name`), read
from the engine's state at scrape time, plus the sim's own (`ostinato_sim:*`). Every series
carries simulated="true"."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.sim.engine import RealtimeSimEngine

_LABELS = ["model_name", "simulated"]


class SimEngineCollector(Collector):
    def __init__(self, engine: RealtimeSimEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        c, core = engine.counters, engine.core
        labels = [engine.config.model, "true"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=_LABELS)
            family.add_metric(labels, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=_LABELS)  # exposed as name_total
            family.add_metric(labels, value)
            return family

        used = core.cache.size + core.cache.reserved
        yield gauge("sglang:num_running_reqs", "Running requests.", core.num_running)
        yield gauge("sglang:num_queue_reqs", "Requests waiting to be scheduled.", len(core.waiting))
        yield gauge("sglang:token_usage", "Fraction of the KV pool in use.",
                    used / core.params.max_total_tokens)
        yield gauge("sglang:cache_hit_rate", "Prompt tokens served from the prefix cache, "
                    "of all prompt tokens.", c.cached_tokens / c.prompt_tokens if c.prompt_tokens
                    else 0.0)
        yield counter("sglang:prompt_tokens", "Prompt tokens.", c.prompt_tokens)
        yield counter("sglang:generation_tokens", "Generated tokens.", c.generation_tokens)
        yield counter("sglang:cached_tokens", "Prompt tokens served from the prefix cache.",
                      c.cached_tokens)
        yield counter("sglang:num_requests", "Requests completed.", c.completed)
        yield counter("sglang:num_aborted_requests", "Requests aborted.", c.aborted)
        yield counter("ostinato_sim:kv_blocks_stored", "KV blocks stored (KV events).",
                      c.blocks_stored)
        yield counter("ostinato_sim:kv_blocks_removed", "KV blocks removed (KV events).",
                      c.blocks_removed)


def sim_engine_registry(engine: RealtimeSimEngine) -> CollectorRegistry:
    """A registry of its own per engine (tests run several engines in one process)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SimEngineCollector(engine))
    return registry
