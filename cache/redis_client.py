"""The one place Redis clients are made: one server, or a Redis Cluster (`redis.cluster`).

`redis.url` names the server, or, with `redis.cluster: true`, any node of a Redis Cluster:
the client then asks that node for the slot map and follows MOVED / ASK redirections.
Nothing else changes for the caller: the key layout (cache/keys.py) puts every multi-key
operation's keys in one slot with hash tags, and the pipelines that span slots are
non-transactional, which the cluster client splits by node.

A cluster has one database only (`/0` or none in the URL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeAlias, TypeVar

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from ostinato.config import RedisConfig

AsyncClient: TypeAlias = aioredis.Redis | AsyncRedisCluster
SyncClient: TypeAlias = redis.Redis | RedisCluster
T = TypeVar("T")


async def within(op: Awaitable[T], timeout_s: float, unavailable: type[Exception]) -> T:
    """One Redis operation, whole, in `timeout_s`; Redis down or slow raises `unavailable`
    (for stores whose callers must tell "not there" from "cannot tell")."""
    try:
        async with asyncio.timeout(timeout_s):
            return await op
    except (aioredis.RedisError, OSError, TimeoutError) as exc:
        raise unavailable(str(exc) or type(exc).__name__) from exc


def _options(timeout_s: float | None, extra: dict[str, Any]) -> dict[str, Any]:
    if timeout_s is not None:
        extra = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, **extra}
    return extra


def connect(url: str, *, cluster: bool = False, timeout_s: float | None = None,
            **options: Any) -> AsyncClient:
    """An asyncio client for `url` (every socket operation bounded by `timeout_s`)."""
    kwargs = _options(timeout_s, options)
    if cluster:
        return AsyncRedisCluster.from_url(url, **kwargs)
    return aioredis.from_url(url, **kwargs)


def from_config(cfg: RedisConfig) -> AsyncClient:
    """The services' client: `redis.url`, `redis.cluster`, each operation within `timeout_s`."""
    return connect(cfg.url, cluster=cfg.cluster, timeout_s=cfg.timeout_s)


def connect_sync(url: str, *, cluster: bool = False, timeout_s: float | None = None,
                 **options: Any) -> SyncClient:
    """The blocking counterpart of `connect` (tools and tests)."""
    kwargs = _options(timeout_s, options)
    if cluster:
        return RedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


class KeptInRedis:
    """Base of the stores whose callers must tell "not there" from "cannot tell" (stored
    responses, conversations): one TTL for what they keep, and every operation whole within
    twice the Redis timeout (a cluster client retries), Redis down raising `unavailable`."""

    unavailable: type[Exception] = ConnectionError

    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float) -> None:
        self._redis = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._timeout = 2 * timeout_s

    async def _do(self, op: Awaitable[T]) -> T:
        return await within(op, self._timeout, self.unavailable)
