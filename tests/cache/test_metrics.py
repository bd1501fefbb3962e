"""Cache counters and lookup latency: a tenant is shown its own, never another's."""

from __future__ import annotations

from cache.metrics import CacheMetrics


def test_a_tenant_sees_its_own_events_and_lookups_and_the_gateways_redis_errors() -> None:
    m = CacheMetrics()
    for ms in (1.0, 2.0, 3.0):
        m.count("hit_exact", tenant="acme")
        m.lookup_ms(ms, "acme")
    m.count("miss", tenant="globex")
    m.lookup_ms(50.0, "globex")
    m.count("redis_error")  # the gateway's, no tenant's
    assert m.tenant_counts("acme") == {"hit_exact": 3, "redis_error": 1}
    assert m.tenant_counts("globex") == {"miss": 1, "redis_error": 1}
    assert m.tenant_counts("initech") == {"redis_error": 1}  # nothing of the others'
    assert m.percentile_ms(0.5, "acme") == 2.0 and m.percentile_ms(0.5, "globex") == 50.0
    assert m.percentile_ms(0.99, "initech") == 0.0
    assert m.counts == {"hit_exact": 3, "miss": 1, "redis_error": 1}  # Prometheus: all
    assert m.percentile_ms(0.99) == 50.0
