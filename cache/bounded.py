"""Every Redis call of the answer caches, bounded in time and accounted for.

A call that fails or takes longer than `timeout_s`, or is not sent because Redis failed
under a second ago (cache/outage.py), raises `RedisDown`: the caller answers "miss" (or
skips the store) and serving goes on. The first failure of an outage is logged
and marks Redis down in the metrics; the first success after it marks it up again.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import structlog
from redis.typing import KeyT

from cache.metrics import CacheMetrics
from cache.outage import RedisOutage, Skipped
from cache.redis_client import within

log = structlog.get_logger(__name__)
T = TypeVar("T")


class RedisDown(Exception):
    pass


class Bounded:
    def __init__(self, timeout_s: float, metrics: CacheMetrics,
                 outage: RedisOutage | None = None) -> None:
        """`outage`: the client's view of Redis, shared with its other users (while Redis
        failed under a second ago, an operation is not sent: cache/outage.py)."""
        self.timeout_s = timeout_s
        self._metrics = metrics
        self._outage = outage

    async def __call__(self, op: Awaitable[T], key: KeyT | None = None) -> T:
        """`op` on `key` (any key of its slot, which names its Redis Cluster node; none for
        an operation across slots), bounded."""
        try:
            result = await within(op, self.timeout_s, RedisDown, self._outage, key=key)
        except RedisDown as exc:
            if not isinstance(exc.__cause__, Skipped):  # (skips are counted as skips)
                self._metrics.count("redis_error")
            if self._metrics.redis_up:
                log.warning("redis unavailable: caches answer miss")
            self._metrics.redis_up = False
            raise
        if not self._metrics.redis_up:
            log.info("redis back: caches serving again")
        self._metrics.redis_up = True
        return result
