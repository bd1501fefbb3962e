"""The semantic cache's in-process index (cache/context_vectors.py), kept in step with Redis.

At start it is rebuilt from the entries in Redis; then it tails the semantic stream, on
which every replica records the entries it adds and removes (its own included), so all
gateway replicas converge on the same index. Works on any Redis version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import structlog

from cache import keys
from cache.bounded import Bounded, RedisDown
from cache.context_vectors import TenantVectors
from cache.redis_client import AsyncClient, text
from cache.semantic_index import Neighbour

log = structlog.get_logger(__name__)


class LocalIndex:
    name = "local"

    def __init__(self, client: AsyncClient, bounded: Bounded, dimensions: int) -> None:
        self._redis = client
        self._r = bounded
        self._index = TenantVectors(dimensions)
        self._stream_id = "0-0"

    def __len__(self) -> int:
        return len(self._index)

    async def start(self) -> None:
        """Rebuilds from Redis, then reads the stream from where the rebuild stopped."""
        try:
            last = await self._r(self._redis.xrevrange(keys.semantic_stream(), count=1))
            self._stream_id = text(last[0][0]) if last else "0-0"
            tenants = await self._r(self._redis.smembers(keys.semantic_tenants()))
            for raw_tenant in tenants:
                tenant = text(raw_tenant)
                ids = await self._r(self._redis.zrange(keys.semantic_index(tenant), 0, -1))
                for raw_id in ids:
                    await self._index_entry(tenant, text(raw_id))
        except RedisDown:
            log.warning("semantic index not rebuilt: redis unavailable")

    async def _index_entry(self, tenant: str, entry_id: str) -> None:
        reply: list[Any] = await self._r(self._redis.hmget(
            keys.semantic_entry(tenant, entry_id), "vec", "context"))
        vec, context = reply
        if vec is None or context is None:
            return
        self._index.add(tenant, entry_id, text(context), np.frombuffer(vec, dtype=np.float32))

    async def upkeep(self) -> None:
        # the stream read waits for news at most a quarter of its bound (half the client's
        # socket timeout: cache/redis_client.py operation_bound): an idle stream is no outage
        await self.sync(max(1, min(1000, int(self._r.timeout_s * 250))))

    async def sync(self, block_ms: int = 1000) -> int:
        """Applies stream records written by any replica (its own included); returns how many."""
        records: Any = await self._r(self._redis.xread({keys.semantic_stream(): self._stream_id},
                                                  count=500, block=block_ms))
        n = 0
        for _, entries in records or []:
            for record_id, fields in entries:
                self._stream_id = text(record_id)
                op, tenant, entry_id = (text(fields[k]) for k in (b"op", b"tenant", b"id"))
                if op == "add":
                    await self._index_entry(tenant, entry_id)
                else:
                    self._index.remove(tenant, entry_id)
                n += 1
        return n

    def stage_add(self, pipe: Any, tenant: str, entry_id: str, context: str,
                  vector: np.ndarray) -> None:
        pass  # the stream record the cache writes is this index's input

    def added(self, tenant: str, entry_id: str, context: str, vector: np.ndarray) -> None:
        self._index.add(tenant, entry_id, context, vector)

    def stage_remove(self, pipe: Any, tenant: str, entry_id: str) -> None:
        pass

    def removed(self, tenant: str, entry_id: str) -> None:
        self._index.remove(tenant, entry_id)

    def forget(self, tenant: str) -> None:
        self._index.drop(tenant)

    async def reconcile(self, tenant: str, held: int) -> None:
        """The stream is capped (~100,000 records): a replica that lagged behind the trim
        (stopped, cut off) never reads the records it missed (replicas review 2026-12-05
        F5). The expiry sweep gives each tenant's count in Redis; where it differs, the ids
        in Redis and here are compared and the difference applied: entries another replica
        added or removed a moment ago (their records not read yet) only come early, and
        their records, read later, change nothing."""
        if self._index.count(tenant) == held:
            return
        ids = {text(raw) for raw in
               await self._r(self._redis.zrange(keys.semantic_index(tenant), 0, -1))}
        have = self._index.ids_of(tenant)
        for entry_id in have - ids:
            self._index.remove(tenant, entry_id)
        for entry_id in ids - have:
            await self._index_entry(tenant, entry_id)

    async def nearest(self, tenant: str, context: str, vector: np.ndarray,
                      k: int) -> list[Neighbour]:
        return self._index.search(tenant, context, vector, k)

    async def count(self, tenant: str) -> int:
        return self._index.count(tenant)
