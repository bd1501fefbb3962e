"""The one place Redis clients are made: one server, or a Redis Cluster (`redis.cluster`).

`redis.url` names the server, or, with `redis.cluster: true`, any node of a Redis Cluster:
the client then asks that node for the slot map and follows MOVED / ASK redirections.
Nothing else changes for the caller: the key layout (cache/keys.py) puts every multi-key
operation's keys in one slot with hash tags, and the pipelines that span slots are
non-transactional, which the cluster client splits by node.

A cluster has one database only (`/0` or none in the URL).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from ostinato.config import RedisConfig

AsyncClient: TypeAlias = aioredis.Redis | AsyncRedisCluster
SyncClient: TypeAlias = redis.Redis | RedisCluster


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
