"""Cache counters and lookup latency, kept in process: read by the gateway's CacheStats RPC
and its Prometheus collector (gateway/metrics.py), and in logs."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CacheMetrics:
    counts: Counter[str] = field(default_factory=Counter)  # e.g. hit_exact, near_miss:numbers differ
    # The same, per tenant, for events that are a tenant's (a lookup's outcome, a store):
    # what a tenant is shown of the caches (CacheStats) is its own activity, never another's.
    by_tenant: dict[str, Counter[str]] = field(default_factory=dict)
    _latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    _tenant_latency_ms: dict[str, deque[float]] = field(default_factory=dict)
    index_entries: int = 0
    redis_up: bool = True
    # Told every lookup's latency in seconds (the gateway's Prometheus histogram).
    on_lookup_s: Callable[[float], None] | None = None

    def count(self, name: str, n: int = 1, tenant: str | None = None) -> None:
        self.counts[name] += n
        if tenant is not None:
            self.by_tenant.setdefault(tenant, Counter())[name] += n

    def tenant_counts(self, tenant: str) -> dict[str, int]:
        """`tenant`'s own events, and the mesh's Redis errors (no tenant's activity)."""
        own = dict(self.by_tenant.get(tenant, ()))
        if self.counts["redis_error"]:
            own["redis_error"] = self.counts["redis_error"]
        return own

    def lookup_ms(self, ms: float, tenant: str | None = None) -> None:
        self._latency_ms.append(ms)
        if tenant is not None:
            self._tenant_latency_ms.setdefault(tenant, deque(maxlen=1_000)).append(ms)
        if self.on_lookup_s is not None:
            self.on_lookup_s(ms / 1000)

    def percentile_ms(self, q: float, tenant: str | None = None) -> float:
        """Lookup latency: the gateway's, or `tenant`'s own lookups' (a tenant is shown
        only its own: the gateway's would tell it when others look up)."""
        data = sorted(self._latency_ms if tenant is None
                      else self._tenant_latency_ms.get(tenant, ()))
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]

    def snapshot(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "index_entries": self.index_entries,
                "redis_up": self.redis_up, "lookup_ms_p50": round(self.percentile_ms(0.5), 3),
                "lookup_ms_p99": round(self.percentile_ms(0.99), 3)}
