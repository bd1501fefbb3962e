"""Every Redis call of the answer caches, bounded in time and accounted for.

A call that fails or takes longer than `timeout_s`, or is not sent because Redis failed
under a second ago (cache/outage.py), raises `RedisDown`: the caller answers "miss" (or
skips the store) and serving goes on. The outage view's state (down while any Redis node is
out of reach) is the metrics' `redis_up`, logged when it turns.
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
    accounted = False  # counted by the Bounded it first left (one may wrap another's calls)


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
            if not exc.accounted and not isinstance(exc.__cause__, Skipped):
                self._metrics.count("redis_error")  # (skips are counted as skips)
            exc.accounted = True
            self._mark(up=False)
            raise
        self._mark(up=True)
        return result

    def _mark(self, up: bool) -> None:
        """Redis up or down in the metrics: as the outage view has it where there is one
        (down while any node is out of reach; one node's failure among answering ones
        does not flap it per request), else as this operation went. Logged when it turns."""
        now_up = not self._outage.down if self._outage is not None else up
        if now_up != self._metrics.redis_up:
            if now_up:
                log.info("redis back: caches serving again")
            else:
                log.warning("redis unavailable: caches answer miss")
        self._metrics.redis_up = now_up
