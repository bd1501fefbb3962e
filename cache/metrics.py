"""Cache counters and lookup latency: kept in process, exported by `snapshot()` and in logs."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

LATENCY_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0)


@dataclass
class CacheMetrics:
    counts: Counter[str] = field(default_factory=Counter)  # e.g. hit_exact, near_miss:numbers differ
    _latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    index_entries: int = 0
    redis_up: bool = True
    # Cumulative lookup-latency histogram (Prometheus): counts per LATENCY_BUCKETS_MS bound.
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))
    latency_count: int = 0
    latency_sum_ms: float = 0.0

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def lookup_ms(self, ms: float) -> None:
        self._latency_ms.append(ms)
        self.latency_count += 1
        self.latency_sum_ms += ms
        for i, bound in enumerate(LATENCY_BUCKETS_MS):
            if ms <= bound:
                self.latency_buckets[i] += 1

    def percentile_ms(self, q: float) -> float:
        data = sorted(self._latency_ms)
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]

    def snapshot(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "index_entries": self.index_entries,
                "redis_up": self.redis_up, "lookup_ms_p50": round(self.percentile_ms(0.5), 3),
                "lookup_ms_p99": round(self.percentile_ms(0.99), 3)}
