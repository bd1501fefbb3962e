"""The answer caches in Redis: exact and semantic, tenant-scoped, with bounded failure.

`AnswerCache.lookup` tries the exact key, then (semantic mode) the semantic index (Redis 8
vector sets when the server has them, else the in-process index: cache/semantic_index.py):
the tenant's candidates under the same context digest, above the threshold, confirmed in
Redis (the source of truth: an expired entry is a miss and leaves the index), then
checked by the near-miss guard. A final turn longer than the embedder reads (MiniLM: 256
word pieces; it cuts the rest) gets no semantic lookup or entry: a document followed by two
different questions would embed alike. `store` writes both. Entries have a fixed TTL (a
hit does not extend it) and each tenant's semantic entries are bounded in number (oldest
evicted first).

Every Redis operation is bounded (cache/redis_client.py `operation_bound` of `timeout_s`,
the client's socket timeout); on failure the cache answers "miss",
counts `redis_error`, marks Redis down in its metrics and logs once per outage, so
serving continues without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from cache import keys, vector_sets
from cache.bounded import Bounded, RedisDown
from cache.embedder import DIMENSIONS, BatchingEmbedder
from cache.fingerprint import SemanticKey
from cache.guard import near_miss
from cache.local_index import LocalIndex
from cache.metrics import CacheMetrics
from cache.outage import outage_of
from cache.redis_client import AsyncClient, operation_bound, text
from cache.semantic_index import SemanticIndex, supports_vector_sets
from cache.server_index import VectorSetIndex

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    # (id, name, arguments JSON) of each tool call the answer made
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    reasoning: str = ""  # a reasoning model's thinking before the answer
    # (token, logprob, ((alternative, logprob), ...)) of each output token, when the call
    # asked for them (its key says so: cache/fingerprint.py)
    logprobs: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = ()
    simulated: bool = False  # written by a simulated engine: a hit of it says so too

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "tool_calls": [list(c) for c in self.tool_calls],
                           "logprobs": [[t, lp, [list(a) for a in top]]
                                        for t, lp, top in self.logprobs]})

    @staticmethod
    def from_json(raw: str | bytes) -> Answer:
        d = json.loads(raw)
        calls = tuple((str(c[0]), str(c[1]), str(c[2])) for c in d.get("tool_calls") or ())
        logprobs = tuple((str(t), float(lp), tuple((str(a), float(alp)) for a, alp in top))
                         for t, lp, top in d.get("logprobs") or ())
        return Answer(str(d["text"]), str(d["finish_reason"]), int(d["prompt_tokens"]),
                      int(d["completion_tokens"]), calls, str(d.get("reasoning") or ""),
                      logprobs, bool(d.get("simulated", False)))


@dataclass(frozen=True)
class Hit:
    kind: str  # "exact" | "semantic"
    answer: Answer
    similarity: float = 1.0


INDEX_CHOICES = ("auto", "local", "redis")
RECENT_VECTORS = 1024  # the lookups' vectors kept for their stores (1.5 kB each)


class AnswerCache:
    def __init__(self, client: AsyncClient, embedder: BatchingEmbedder | None, *,
                 ttl_s: float = 3600.0, max_entries_per_tenant: int = 10_000,
                 timeout_s: float = 0.25, metrics: CacheMetrics | None = None,
                 candidates: int = 8, semantic_index: str = "auto",
                 sweep_every_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        if semantic_index not in INDEX_CHOICES:
            raise ValueError(f"semantic_index must be one of {INDEX_CHOICES}, got {semantic_index!r}")
        self._redis = client
        self._embedder = embedder
        self._ttl_ms = int(ttl_s * 1000)
        self._max = max_entries_per_tenant
        self._timeout = timeout_s
        self._k = candidates
        self._choice = semantic_index
        self._sweep_every_s = sweep_every_s
        self._clock = clock  # wall-clock seconds: entry ages in the index zset
        # (tenant, text) -> vector: per tenant, so that a lookup's speed tells no tenant
        # what another sent (a vector kept for another's text answered 5x faster)
        self._recent_vectors: OrderedDict[tuple[str, str], np.ndarray | None] = OrderedDict()
        self._decided = semantic_index != "auto"
        self.metrics = metrics or CacheMetrics()
        self._r = Bounded(operation_bound(timeout_s), self.metrics, outage_of(client))
        self.index: SemanticIndex = (
            VectorSetIndex(client, self._r, self._ttl_ms) if semantic_index == "redis"
            else LocalIndex(client, self._r, DIMENSIONS))

    @property
    def vector_search(self) -> bool:
        """Whether the server's own vector index (Redis 8 vector sets) is in use."""
        return isinstance(self.index, VectorSetIndex)

    # ---- start and upkeep -------------------------------------------------------------

    async def start(self) -> None:
        """Picks the semantic index (auto: Redis 8 vector sets when the server has them,
        else the in-process index) and starts it."""
        found = await supports_vector_sets(self._redis, self._timeout)
        if self._choice == "redis" and found is False:
            raise RuntimeError("semantic_index=redis, but the Redis server has no vector sets "
                               "(VADD/VSIM need Redis 8+)")
        if self._choice == "auto":
            self._decided = found is not None
            if found:
                self.index = VectorSetIndex(self._redis, self._r, self._ttl_ms)
        await self._start_index()

    async def _start_index(self) -> None:
        with contextlib.suppress(RedisDown):
            await self.index.start()
        self.metrics.index_entries = len(self.index)
        log.info("semantic index", index=self.index.name, entries=len(self.index),
                 decided=self._decided)

    async def run_sync(self) -> None:
        """The index's background work for as long as the gateway runs; rides out Redis
        outages. With Redis down at start, `auto` decides once it can ask the server."""
        swept = time.monotonic()
        while True:
            try:
                if not self._decided:
                    await self._decide_late()
                await self.index.upkeep()
                if time.monotonic() - swept >= self._sweep_every_s:
                    await self.sweep()
                    swept = time.monotonic()
                self.metrics.index_entries = len(self.index)
            except RedisDown:
                await asyncio.sleep(1.0)

    async def _decide_late(self) -> None:
        found = await supports_vector_sets(self._redis, self._timeout)
        if found is None:
            return
        self._decided = True
        if found:
            self.index = VectorSetIndex(self._redis, self._r, self._ttl_ms)
            await self._start_index()

    async def sweep(self) -> None:
        """Removes the semantic entries that expired while their tenant stored nothing new
        (a store trims its own tenant's): from Redis, the stream and the index. A tenant
        with none left (all expired, or the tenant revoked) leaves the set of tenants and
        the in-process index; one whose count there differs from Redis's is reloaded
        (`reconcile`). A store racing the check only loses its in-process copy on this
        replica until the next sweep: a missed hit, never a wrong one."""
        cutoff = self._clock() - self._ttl_ms / 1000
        for raw in await self._r(self._redis.smembers(keys.semantic_tenants())):
            tenant = text(raw)
            index_key = keys.semantic_index(tenant)
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrangebyscore(index_key, "-inf", cutoff)
            pipe.zcard(index_key)
            expired_raw, held = await self._r(pipe.execute(), index_key)
            expired = [text(r) for r in expired_raw]
            if expired:
                await self._remove(tenant, expired)
            if int(held) <= len(expired):
                await self._r(self._redis.srem(keys.semantic_tenants(), tenant))
                self.index.forget(tenant)
            else:
                await self.index.reconcile(tenant, int(held) - len(expired))
        self.metrics.index_entries = len(self.index)

    async def _embed(self, tenant: str, text: str) -> np.ndarray | None:
        """The text's vector (None: longer than the embedder reads). A miss's store comes
        seconds after its lookup with the same text: the vectors of a tenant's recent
        lookups are kept, so that it is embedded once."""
        key = (tenant, text)
        if key in self._recent_vectors:
            self._recent_vectors.move_to_end(key)
            return self._recent_vectors[key]
        vector = await self._embedder.embed(text)  # type: ignore[union-attr]
        self._recent_vectors[key] = vector
        while len(self._recent_vectors) > RECENT_VECTORS:
            self._recent_vectors.popitem(last=False)
        return vector

    async def entries_of(self, tenant: str) -> int:
        """`tenant`'s entries in the semantic index (0 while Redis is out of reach)."""
        try:
            return await self._r(self.index.count(tenant))
        except RedisDown:
            return 0

    # ---- lookup -----------------------------------------------------------------------

    async def lookup(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                     threshold: float) -> Hit | None:
        start = time.perf_counter()
        try:
            return await self._lookup(tenant, exact_digest, semantic, threshold)
        except RedisDown:
            self.metrics.count("miss", tenant=tenant)
            return None
        finally:
            self.metrics.lookup_ms((time.perf_counter() - start) * 1000, tenant)

    async def _lookup(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                      threshold: float) -> Hit | None:
        if exact_digest is not None:
            exact = keys.exact_entry(tenant, exact_digest)
            raw = await self._r(self._redis.get(exact), exact)
            if raw is not None:
                self.metrics.count("hit_exact", tenant=tenant)
                return Hit("exact", Answer.from_json(raw))
        if semantic is None or self._embedder is None:
            self.metrics.count("miss", tenant=tenant)
            return None
        vector = await self._embed(tenant, semantic.text)
        if vector is None:  # longer than the embedder reads: exact only
            self.metrics.count("semantic_skipped:too_long", tenant=tenant)
            self.metrics.count("miss", tenant=tenant)
            return None
        near = [c for c in await self.index.nearest(tenant, semantic.context, vector, self._k)
                if c.similarity >= threshold]
        if near:  # the candidates' entries in one round trip, most similar first
            pipe = self._redis.pipeline(transaction=False)
            for cand in near:
                pipe.hmget(keys.semantic_entry(tenant, cand.entry_id), "text", "answer", "context")
            rows = await self._r(pipe.execute(), keys.semantic_index(tenant))  # (one slot)
            gone = [c.entry_id for c, row in zip(near, rows, strict=True) if row[0] is None]
            if gone:  # expired or evicted in Redis: drop them from the index too
                await self._remove(tenant, gone)
            for cand, (text, answer, context) in zip(near, rows, strict=True):
                if text is None or context.decode() != semantic.context:
                    continue
                reason = near_miss(semantic.text, text.decode())
                if reason is not None:
                    self.metrics.count("near_miss_rejected", tenant=tenant)
                    self.metrics.count(f"near_miss:{reason}", tenant=tenant)
                    continue
                self.metrics.count("hit_semantic", tenant=tenant)
                return Hit("semantic", Answer.from_json(answer), cand.similarity)
        self.metrics.count("miss", tenant=tenant)
        return None

    # ---- store ------------------------------------------------------------------------

    async def store(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                    answer: Answer) -> None:
        try:
            if exact_digest is not None:
                exact = keys.exact_entry(tenant, exact_digest)
                await self._r(self._redis.set(exact, answer.to_json(), px=self._ttl_ms), exact)
            if semantic is not None and self._embedder is not None:
                await self._store_semantic(tenant, semantic, answer)
        except RedisDown:
            self.metrics.count("store_skipped", tenant=tenant)

    async def _store_semantic(self, tenant: str, semantic: SemanticKey, answer: Answer) -> None:
        vector = await self._embed(tenant, semantic.text)
        if vector is None:  # the lookup counted it
            return
        entry_id = vector_sets.entry_id(semantic.context, uuid.uuid4().hex)
        entry = keys.semantic_entry(tenant, entry_id)
        index_key = keys.semantic_index(tenant)
        now = self._clock()
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(entry, mapping={"vec": np.asarray(vector, dtype=np.float32).tobytes(),
                                  "context": semantic.context, "text": semantic.text,
                                  "answer": answer.to_json()})
        pipe.pexpire(entry, self._ttl_ms)
        pipe.zadd(index_key, {entry_id: now})
        pipe.pexpire(index_key, self._ttl_ms)  # gone with its newest entry
        pipe.sadd(keys.semantic_tenants(), tenant)
        pipe.xadd(keys.semantic_stream(), {"op": "add", "tenant": tenant, "id": entry_id},
                  maxlen=100_000, approximate=True)
        self.index.stage_add(pipe, tenant, entry_id, semantic.context, vector)
        pipe.zrangebyscore(index_key, "-inf", now - self._ttl_ms / 1000)  # expired
        pipe.zcard(index_key)
        results: list[Any] = await self._r(pipe.execute())
        self.index.added(tenant, entry_id, semantic.context, vector)
        self.metrics.count("stored_semantic", tenant=tenant)
        expired = [text(raw) for raw in results[-2]]
        if expired:
            await self._remove(tenant, expired)
        over = int(results[-1]) - len(expired) - self._max
        if over > 0:
            oldest: list[Any] = await self._r(self._redis.zpopmin(index_key, over), index_key)
            await self._remove(tenant, [text(raw) for raw, _ in oldest])
            self.metrics.count("evicted", len(oldest), tenant)
        self.metrics.index_entries = len(self.index)

    async def _remove(self, tenant: str, entry_ids: list[str]) -> None:
        """Removes entries from Redis, the stream and the index (eviction, expiry)."""
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.zrem(keys.semantic_index(tenant), entry_id)
            pipe.delete(keys.semantic_entry(tenant, entry_id))
            pipe.xadd(keys.semantic_stream(), {"op": "del", "tenant": tenant, "id": entry_id},
                      maxlen=100_000, approximate=True)
            self.index.stage_remove(pipe, tenant, entry_id)
        await self._r(pipe.execute())
        for entry_id in entry_ids:
            self.index.removed(tenant, entry_id)
