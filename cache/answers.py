"""The answer caches in Redis: exact and semantic, tenant-scoped, with bounded failure.

`AnswerCache.lookup` tries the exact key, then (semantic mode) the tenant's ANN index:
candidates above the threshold whose context digest matches exactly, confirmed in Redis
(the source of truth: an expired entry is a miss and leaves the index), then checked by
the near-miss guard. `store` writes both. Entries have a fixed TTL (a hit does not extend
it) and each tenant's semantic entries are bounded in number (oldest evicted first).

Every Redis operation is bounded by `timeout_s`; on failure the cache answers "miss",
counts `redis_error`, marks Redis down in its metrics and logs once per outage, so
serving continues without it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
import structlog

from cache import keys
from cache.ann import TenantIndexes
from cache.embedder import DIMENSIONS, BatchingEmbedder
from cache.fingerprint import SemanticKey
from cache.guard import near_miss
from cache.metrics import CacheMetrics

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @staticmethod
    def from_json(raw: str | bytes) -> Answer:
        d = json.loads(raw)
        return Answer(str(d["text"]), str(d["finish_reason"]), int(d["prompt_tokens"]),
                      int(d["completion_tokens"]))


@dataclass(frozen=True)
class Hit:
    kind: str  # "exact" | "semantic"
    answer: Answer
    similarity: float = 1.0


class RedisDown(Exception):
    pass


class AnswerCache:
    def __init__(self, client: aioredis.Redis, embedder: BatchingEmbedder | None, *,
                 ttl_s: float = 3600.0, max_entries_per_tenant: int = 10_000,
                 timeout_s: float = 0.25, metrics: CacheMetrics | None = None,
                 candidates: int = 8) -> None:
        self._redis = client
        self._embedder = embedder
        self._ttl_ms = int(ttl_s * 1000)
        self._max = max_entries_per_tenant
        self._timeout = timeout_s
        self._k = candidates
        self.metrics = metrics or CacheMetrics()
        self.index = TenantIndexes(DIMENSIONS)
        self._stream_id = "0-0"
        self.vector_search = False  # the server's own vector index (Redis 8 / Stack)

    # ---- Redis, bounded ---------------------------------------------------------------

    async def _r(self, op: Awaitable[T]) -> T:
        try:
            result = await asyncio.wait_for(op, self._timeout)
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            self.metrics.count("redis_error")
            if self.metrics.redis_up:
                log.warning("redis unavailable: caches answer miss", error=repr(exc))
            self.metrics.redis_up = False
            raise RedisDown(str(exc)) from exc
        if not self.metrics.redis_up:
            log.info("redis back: caches serving again")
        self.metrics.redis_up = True
        return result

    # ---- start and sync ---------------------------------------------------------------

    async def start(self) -> None:
        """Detects server-side vector search, rebuilds the index from Redis, then reads the
        stream from where the rebuild stopped."""
        try:
            modules = await self._r(self._redis.execute_command("MODULE", "LIST"))
            names = {str(m.get(b"name") or m.get("name") or b"") if isinstance(m, dict)
                     else str(m) for m in modules or []}
            self.vector_search = any("search" in n.lower() for n in names)
        except (RedisDown, aioredis.ResponseError):
            self.vector_search = False
        if self.vector_search:
            log.info("redis offers vector search; the in-process index is used "
                     "(the RediSearch path is not built yet)")
        await self.rebuild()

    async def rebuild(self) -> None:
        try:
            last = await self._r(self._redis.xrevrange(keys.semantic_stream(), count=1))
            self._stream_id = last[0][0].decode() if last else "0-0"
            tenants = await self._r(self._redis.smembers(keys.semantic_tenants()))
            for raw_tenant in tenants:
                tenant = raw_tenant.decode()
                ids = await self._r(self._redis.zrange(keys.semantic_index(tenant), 0, -1))
                for raw_id in ids:
                    await self._index_entry(tenant, raw_id.decode())
        except RedisDown:
            log.warning("semantic index not rebuilt: redis unavailable")
        self.metrics.index_entries = len(self.index)

    async def _index_entry(self, tenant: str, entry_id: str) -> None:
        vec, context = await self._r(self._redis.hmget(
            keys.semantic_entry(tenant, entry_id), "vec", "context"))
        if vec is None or context is None:
            return
        self.index.add(tenant, entry_id, context.decode(), np.frombuffer(vec, dtype=np.float32))

    async def sync(self, block_ms: int = 1000) -> int:
        """Applies stream records written by any replica (its own included); returns how many."""
        records = await self._r(self._redis.xread({keys.semantic_stream(): self._stream_id},
                                                  count=500, block=block_ms))
        n = 0
        for _, entries in records or []:
            for record_id, fields in entries:
                self._stream_id = record_id.decode()
                op, tenant = fields[b"op"].decode(), fields[b"tenant"].decode()
                entry_id = fields[b"id"].decode()
                if op == "add":
                    await self._index_entry(tenant, entry_id)
                else:
                    self.index.remove(tenant, entry_id)
                n += 1
        self.metrics.index_entries = len(self.index)
        return n

    async def run_sync(self) -> None:
        """Tails the stream for as long as the gateway runs; rides out Redis outages."""
        while True:
            try:
                await self.sync()
            except RedisDown:
                await asyncio.sleep(1.0)

    # ---- lookup -----------------------------------------------------------------------

    async def lookup(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                     threshold: float) -> Hit | None:
        start = time.perf_counter()
        try:
            return await self._lookup(tenant, exact_digest, semantic, threshold)
        except RedisDown:
            self.metrics.count("miss")
            return None
        finally:
            self.metrics.lookup_ms((time.perf_counter() - start) * 1000)

    async def _lookup(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                      threshold: float) -> Hit | None:
        if exact_digest is not None:
            raw = await self._r(self._redis.get(keys.exact_entry(tenant, exact_digest)))
            if raw is not None:
                self.metrics.count("hit_exact")
                return Hit("exact", Answer.from_json(raw))
        if semantic is None or self._embedder is None:
            self.metrics.count("miss")
            return None
        vector = await self._embedder.embed(semantic.text)
        for cand in self.index.search(tenant, vector, self._k):
            if cand.similarity < threshold:
                break
            if cand.context != semantic.context:
                continue
            fields = await self._r(self._redis.hmget(keys.semantic_entry(tenant, cand.entry_id),
                                                     "text", "answer"))
            if fields[0] is None:  # expired or evicted in Redis: drop it here too
                self.index.remove(tenant, cand.entry_id)
                continue
            reason = near_miss(semantic.text, fields[0].decode())
            if reason is not None:
                self.metrics.count("near_miss_rejected")
                self.metrics.count(f"near_miss:{reason}")
                continue
            self.metrics.count("hit_semantic")
            return Hit("semantic", Answer.from_json(fields[1]), cand.similarity)
        self.metrics.count("miss")
        return None

    # ---- store ------------------------------------------------------------------------

    async def store(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                    answer: Answer) -> None:
        try:
            if exact_digest is not None:
                await self._r(self._redis.set(keys.exact_entry(tenant, exact_digest),
                                              answer.to_json(), px=self._ttl_ms))
            if semantic is not None and self._embedder is not None:
                await self._store_semantic(tenant, semantic, answer)
        except RedisDown:
            self.metrics.count("store_skipped")

    async def _store_semantic(self, tenant: str, semantic: SemanticKey, answer: Answer) -> None:
        vector = await self._embedder.embed(semantic.text)  # type: ignore[union-attr]
        entry_id = uuid.uuid4().hex
        entry = keys.semantic_entry(tenant, entry_id)
        index_key = keys.semantic_index(tenant)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(entry, mapping={"vec": np.asarray(vector, dtype=np.float32).tobytes(),
                                  "context": semantic.context, "text": semantic.text,
                                  "answer": answer.to_json()})
        pipe.pexpire(entry, self._ttl_ms)
        pipe.zadd(index_key, {entry_id: time.time()})
        pipe.zremrangebyscore(index_key, "-inf", time.time() - self._ttl_ms / 1000)
        pipe.sadd(keys.semantic_tenants(), tenant)
        pipe.xadd(keys.semantic_stream(), {"op": "add", "tenant": tenant, "id": entry_id},
                  maxlen=100_000, approximate=True)
        pipe.zcard(index_key)
        results: list[Any] = await self._r(pipe.execute())
        self.index.add(tenant, entry_id, semantic.context, vector)
        over = int(results[-1]) - self._max
        if over > 0:
            await self._evict(tenant, over)
        self.metrics.count("stored_semantic")
        self.metrics.index_entries = len(self.index)

    async def _evict(self, tenant: str, count: int) -> None:
        oldest = await self._r(self._redis.zpopmin(keys.semantic_index(tenant), count))
        pipe = self._redis.pipeline(transaction=False)
        for raw_id, _ in oldest:
            entry_id = raw_id.decode()
            pipe.delete(keys.semantic_entry(tenant, entry_id))
            pipe.xadd(keys.semantic_stream(), {"op": "del", "tenant": tenant, "id": entry_id},
                      maxlen=100_000, approximate=True)
            self.index.remove(tenant, entry_id)
        await self._r(pipe.execute())
        self.metrics.count("evicted", len(oldest))
