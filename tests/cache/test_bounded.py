"""The answer caches' bounded Redis calls (cache/bounded.py): metrics and logs per outage,
not per request, on a cluster with one node out (fake operations, pure: no Redis)."""

from __future__ import annotations

import pytest
import redis
from structlog.testing import capture_logs

from cache.bounded import Bounded, RedisDown
from cache.metrics import CacheMetrics
from cache.outage import RedisOutage
from cache.server_index import VectorSetIndex


async def _ok() -> bytes:
    return b"v"


async def _refused() -> bytes:
    raise redis.exceptions.ConnectionError("refused")


def _events(logs: list[dict], event: str) -> int:
    return sum(e["event"] == event for e in logs)


async def test_one_node_out_is_logged_once_and_redis_up_does_not_flap() -> None:
    """Node A out, node B serving, requests alternating between them (as tenants' do): one
    warning, Redis down in the metrics throughout, and one "back" when A answers again."""
    clock = [0.0]
    outage = RedisOutage(retry_s=60.0, clock=lambda: clock[0], route=lambda key: key)
    metrics = CacheMetrics()
    bounded = Bounded(0.5, metrics, outage)
    with capture_logs() as logs:
        with pytest.raises(RedisDown):
            await bounded(_refused(), "A")  # A's outage begins
        for _ in range(10):
            assert await bounded(_ok(), "B") == b"v"
            assert not metrics.redis_up
            with pytest.raises(RedisDown):
                await bounded(_ok(), "A")  # skipped
        clock[0] += 60.0
        assert await bounded(_ok(), "A") == b"v"  # the probe: A is back
    assert metrics.redis_up
    assert _events(logs, "redis unavailable: caches answer miss") == 1
    assert _events(logs, "redis back: caches serving again") == 1
    assert metrics.counts["redis_error"] == 1  # the skips are counted as skips
    assert outage.skipped == 10


class _NodeOut:
    """scan_iter answers; VCARD fails (its node out of reach)."""

    async def scan_iter(self, match: str, count: int):  # type: ignore[no-untyped-def]
        yield b"ost:{t:x}:sem:vs:a"

    def execute_command(self, *args: object):  # type: ignore[no-untyped-def]
        return _refused()


async def test_a_failure_under_nested_bounds_is_counted_once() -> None:
    """AnswerCache.entries_of bounds the index's count, which bounds each VCARD itself."""
    metrics = CacheMetrics()
    bounded = Bounded(0.5, metrics, RedisOutage(route=lambda key: "A"))
    index = VectorSetIndex(_NodeOut(), bounded, 60_000)  # type: ignore[arg-type]
    with pytest.raises(RedisDown):
        await bounded(index.count("x"))
    assert metrics.counts["redis_error"] == 1
