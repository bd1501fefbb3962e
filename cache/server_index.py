"""The semantic cache's server-side index: Redis 8 vector sets (see cache/vector_sets.py).

The server keeps one HNSW graph per (tenant, context) and answers VSIM; nothing is held
in process, so replicas need no stream to agree. The vector set gets the entries' TTL on
every add, so a tenant/context that stops writing vanishes once its entries have expired;
single entries are removed (VREM) when the cache evicts or trims them, or when a lookup
finds their hash already expired.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from cache import keys
from cache.bounded import Bounded
from cache.redis_client import AsyncClient, text
from cache.semantic_index import Neighbour
from cache.vector_sets import context_prefix, context_tag, parse_vsim, vadd_args, vrem_args, vsim_args


class VectorSetIndex:
    name = "redis-vector-sets"

    def __init__(self, client: AsyncClient, bounded: Bounded, ttl_ms: int,
                 refresh_s: float = 2.0) -> None:
        self._redis = client
        self._r = bounded
        self._ttl_ms = ttl_ms
        self._refresh_s = refresh_s
        self._size = 0

    def __len__(self) -> int:
        return self._size

    async def start(self) -> None:
        await self._refresh_size()

    async def upkeep(self) -> None:
        await asyncio.sleep(self._refresh_s)
        await self._refresh_size()

    async def _refresh_size(self) -> None:
        """Entries indexed, over all tenants (each tenant's entry zset, one pipeline)."""
        tenants = await self._r(self._redis.smembers(keys.semantic_tenants()))
        pipe = self._redis.pipeline(transaction=False)
        for raw in tenants:
            pipe.zcard(keys.semantic_index(text(raw)))
        self._size = sum(int(n) for n in await self._r(pipe.execute())) if tenants else 0

    @staticmethod
    def _key(tenant: str, entry_id: str) -> str | None:
        prefix = context_prefix(entry_id)
        return keys.semantic_vector_set(tenant, prefix) if prefix else None

    def stage_add(self, pipe: Any, tenant: str, entry_id: str, context: str,
                  vector: np.ndarray) -> None:
        key = self._key(tenant, entry_id)
        if key is None:
            raise ValueError(f"entry id {entry_id!r} does not name its context")
        pipe.execute_command(*vadd_args(key, vector, entry_id))
        pipe.pexpire(key, self._ttl_ms)

    def added(self, tenant: str, entry_id: str, context: str, vector: np.ndarray) -> None:
        self._size += 1

    def stage_remove(self, pipe: Any, tenant: str, entry_id: str) -> None:
        key = self._key(tenant, entry_id)
        if key is not None:
            pipe.execute_command(*vrem_args(key, entry_id))

    def removed(self, tenant: str, entry_id: str) -> None:
        self._size = max(0, self._size - 1)

    def forget(self, tenant: str) -> None:
        pass  # nothing held in process; the size is counted again at the next upkeep

    async def reconcile(self, tenant: str, held: int) -> None:
        pass  # the server's own sets: nothing to reload

    async def nearest(self, tenant: str, context: str, vector: np.ndarray,
                      k: int) -> list[Neighbour]:
        key = keys.semantic_vector_set(tenant, context_tag(context))
        reply = await self._r(self._redis.execute_command(*vsim_args(key, vector, k)), key)
        return [Neighbour(element, similarity) for element, similarity in parse_vsim(reply)]

    async def count(self, tenant: str) -> int:
        total = 0
        pattern = keys.semantic_vector_set(tenant, "*")
        async for key in self._redis.scan_iter(match=pattern, count=500):
            total += int(await self._r(self._redis.execute_command("VCARD", key), key))
        return total
