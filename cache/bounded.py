"""Every Redis call of the answer caches, bounded in time and accounted for.

A call that fails or takes longer than `timeout_s` raises `RedisDown`: the caller answers
"miss" (or skips the store) and serving goes on. The first failure of an outage is logged
and marks Redis down in the metrics; the first success after it marks it up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis
import structlog

from cache.metrics import CacheMetrics

log = structlog.get_logger(__name__)
T = TypeVar("T")


class RedisDown(Exception):
    pass


class Bounded:
    def __init__(self, timeout_s: float, metrics: CacheMetrics) -> None:
        self.timeout_s = timeout_s
        self._metrics = metrics

    async def __call__(self, op: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):  # no task per operation
                result = await op
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            self._metrics.count("redis_error")
            if self._metrics.redis_up:
                log.warning("redis unavailable: caches answer miss", error=repr(exc))
            self._metrics.redis_up = False
            raise RedisDown(str(exc)) from exc
        if not self._metrics.redis_up:
            log.info("redis back: caches serving again")
        self._metrics.redis_up = True
        return result
