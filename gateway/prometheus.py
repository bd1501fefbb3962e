"""The gateway's metrics in the Prometheus text format (GET /metrics on the HTTP port)."""

from __future__ import annotations

from collections import Counter

from cache.metrics import LATENCY_BUCKETS_MS, CacheMetrics


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render(cache: CacheMetrics | None, index_entries: int, http_responses: Counter[tuple[str, int]],
           tenancy_stale: bool) -> str:
    lines = [
        "# HELP ostinato_http_responses_total HTTP API responses by route and status.",
        "# TYPE ostinato_http_responses_total counter",
    ]
    for (route, status), n in sorted(http_responses.items()):
        lines.append(f'ostinato_http_responses_total{{route="{_label(route)}",status="{status}"}} {n}')
    lines += [
        "# HELP ostinato_tenancy_stale 1 while Redis is unreachable and the last tenancy snapshot serves.",
        "# TYPE ostinato_tenancy_stale gauge",
        f"ostinato_tenancy_stale {int(tenancy_stale)}",
    ]
    if cache is None:
        return "\n".join(lines) + "\n"
    lines += [
        "# HELP ostinato_cache_events_total Answer-cache events: hits, misses, rejected near-misses, "
        "Redis errors.",
        "# TYPE ostinato_cache_events_total counter",
    ]
    for name, n in sorted(cache.counts.items()):
        lines.append(f'ostinato_cache_events_total{{event="{_label(name)}"}} {n}')
    lines += [
        "# HELP ostinato_cache_redis_up 0 after a Redis operation failed, 1 once one succeeds.",
        "# TYPE ostinato_cache_redis_up gauge",
        f"ostinato_cache_redis_up {int(cache.redis_up)}",
        "# HELP ostinato_cache_index_entries Entries in the in-process semantic (ANN) index.",
        "# TYPE ostinato_cache_index_entries gauge",
        f"ostinato_cache_index_entries {index_entries}",
        "# HELP ostinato_cache_lookup_seconds Answer-cache lookup latency, embedding included.",
        "# TYPE ostinato_cache_lookup_seconds histogram",
    ]
    for bound, n in zip(LATENCY_BUCKETS_MS, cache.latency_buckets, strict=True):
        lines.append(f'ostinato_cache_lookup_seconds_bucket{{le="{bound / 1000:g}"}} {n}')
    lines += [
        f'ostinato_cache_lookup_seconds_bucket{{le="+Inf"}} {cache.latency_count}',
        f"ostinato_cache_lookup_seconds_sum {cache.latency_sum_ms / 1000:.6f}",
        f"ostinato_cache_lookup_seconds_count {cache.latency_count}",
    ]
    return "\n".join(lines) + "\n"
