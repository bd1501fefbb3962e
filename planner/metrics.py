"""The planner's Prometheus metrics (GET /metrics on planner.metrics_port).

Counters and the queue-wait histogram are moved by the servicer (planner/service.py) as
calls are admitted, granted, rejected, cancelled and reported; queue depth, parked and
running calls, worker budgets and open programs are read from the core when scraped (the
core itself knows nothing of Prometheus).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ostinato.clock import Clock, SystemClock
from planner.core import Grant, PlannerCore

QUEUE_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                      60.0, 120.0)


# A queue's series stays at 0 this long after it last held a call, then goes (a tenant or
# level gone quiet is not exported for ever); without the zeros a series just stopped at its
# last count when its queue emptied, and a dashboard drew the queue as never draining.
ZERO_HOLD_S = 600.0

Key = TypeVar("Key", bound=tuple[str, ...])


class _Emptied(Generic[Key]):
    """The label sets of a gauge read from the core, with those seen lately read as 0."""

    def __init__(self, clock: Clock, hold_s: float = ZERO_HOLD_S) -> None:
        self._clock = clock
        self._hold_s = hold_s
        self._seen: dict[Key, float] = {}

    def of(self, counts: Mapping[Key, int]) -> dict[Key, int]:
        now = self._clock.now()
        out = dict(counts)
        for key in counts:
            self._seen[key] = now
        for key, at in list(self._seen.items()):
            if key not in out:
                if now - at > self._hold_s:
                    del self._seen[key]
                else:
                    out[key] = 0
        return out


class _CoreCollector(Collector):
    def __init__(self, core: PlannerCore, clock: Clock) -> None:
        self._core = core
        self._depths: _Emptied[tuple[str, str]] = _Emptied(clock)
        self._parked: _Emptied[tuple[str, str]] = _Emptied(clock)
        self._starting: _Emptied[tuple[str]] = _Emptied(clock)

    def collect(self) -> Iterator[Metric]:
        core = self._core
        depth = GaugeMetricFamily("ostinato_planner_queue_depth", "Calls in the global queue "
                                  "by tenant and level (0 goes first).", labels=["tenant", "level"])
        depths = {(tenant, str(level)): n for (tenant, level), n in core.queue_depths().items()}
        for labels, n in sorted(self._depths.of(depths).items()):
            depth.add_metric(list(labels), n)
        yield depth
        parked = GaugeMetricFamily("ostinato_planner_parked_calls", "Calls waiting for their "
                                   "home worker (the engine holding their context).",
                                   labels=["worker", "tenant"])
        for labels, n in sorted(self._parked.of(core.parked_counts()).items()):
            parked.add_metric(list(labels), n)
        yield parked
        starting = GaugeMetricFamily(
            "ostinato_planner_admission_waiting_calls", "Calls waiting for their program to "
            "start (program admission: the tenant's open programs' contexts fill its share of "
            "the engines' KV caches); in no queue yet.", labels=["tenant"])
        waiting = {(tenant,): n for tenant, n in core.admission_waiting().items()}
        for (tenant,), n in sorted(self._starting.of(waiting).items()):
            starting.add_metric([tenant], n)
        yield starting
        running = GaugeMetricFamily("ostinato_planner_running_calls", "Calls granted to a "
                                    "worker and not yet reported done.", labels=["worker"])
        budget = GaugeMetricFamily("ostinato_planner_worker_budget", "A worker's admission "
                                   "budget (max_inflight).", labels=["worker"])
        for worker in core.workers:
            running.add_metric([worker.worker_id], worker.inflight)
            budget.add_metric([worker.worker_id], worker.max_inflight)
        yield running
        yield budget
        yield GaugeMetricFamily("ostinato_planner_programs_open", "Programs started and not "
                                "yet ended or expired.", value=core.programs_open)


class PlannerMetrics:
    def __init__(self, core: PlannerCore, registry: CollectorRegistry | None = None,
                 clock: Clock | None = None) -> None:
        """`clock`: how long a queue has been empty (the planner's: the system's)."""
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        r.register(_CoreCollector(core, clock if clock is not None else SystemClock()))
        self.admitted = Counter(
            "ostinato_planner_calls_admitted", "Calls accepted for scheduling (queued, or "
            "blocked on their parents).", ["tenant"], registry=r)
        self.recorded = Counter(
            "ostinato_planner_calls_served_from_cache", "Calls the gateway answered from its "
            "cache: recorded in their program, never queued.", ["tenant"], registry=r)
        self.granted = Counter(
            "ostinato_planner_calls_granted", "Calls dispatched to a worker.", ["worker"],
            registry=r)
        self.rejected = Counter(
            "ostinato_planner_calls_rejected", "Admissions refused, by gRPC status code.",
            ["tenant", "code"], registry=r)
        self.cancelled = Counter(
            "ostinato_planner_calls_cancelled", "Calls whose caller went away while they "
            "waited for a grant.", ["tenant"], registry=r)
        self.completed = Counter(
            "ostinato_planner_calls_completed", "Completion reports from workers, by status "
            "(ok, failed, cancelled, deadline_exceeded).", ["worker", "status"], registry=r)
        self.unstarted_grants = Counter(
            "ostinato_planner_unstarted_grants", "Calls running on a worker that its heartbeat "
            "did not list, granted over planner.unstarted_grant_s ago (their gateway died "
            "before starting them, or the worker restarted): ended CANCELLED, slots freed.",
            ["worker"], registry=r)
        self.queue_wait = Histogram(
            "ostinato_planner_queue_wait_seconds", "From a call's arrival to its grant "
            "(waiting for parents, in the queue and parked).", buckets=QUEUE_WAIT_BUCKETS,
            registry=r)

    def granted_calls(self, grants: list[Grant]) -> None:
        for grant in grants:
            self.granted.labels(grant.worker_id).inc()
            self.queue_wait.observe(grant.queued_s)
