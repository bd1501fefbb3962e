"""The KV-reference index in Redis: which worker's engine holds which prompt blocks.

Blocks are named by cache/block_hash.prefix_block_hashes: fixed-size token blocks of the
served model's tokenizer, chained, salted with the tenant. Workers publish the blocks their
engine holds, scored by when they were stored; the planner asks, in one round trip, how long
a prefix of a new prompt each worker holds and routes on the answer.

    ost:kv:{w:<worker_id>}:blocks   zset   block hash (16 hex digits) -> last stored (unix s)

Where the engine publishes KV events (SGLang's BlockStored / BlockRemoved), the worker
translates them (workers/kv_event_translator.py) and adds and removes exactly what the engine
stored and evicted. Where it does not, the worker publishes a call's prompt and answer on
completion and trims its key at every heartbeat the way its engine's LRU cache evicts:
blocks not stored for `max_age_s`, and the oldest beyond `max_blocks` (the engine's KV
capacity in blocks). Either way an engine cache flush clears the key, and the key's TTL is
refreshed by the worker's heartbeats, so a dead worker's entries vanish on their own.

Every change is also appended, in the same pipeline, to the worker's change stream
(`ost:kv:{w:<worker_id>}:changes`, capped): the planner keeps its own copy of every worker's
key from it (cache/kv_mirror.py) and asks that, not Redis, before each admission. Each entry
carries the writer's sequence number, so a reader that missed one (a failed write, a capped
stream) knows to reload the key.

Every call is bounded by `timeout_s`; a lookup that fails answers None (callers fall back to
their own approximate index) and is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from cache.block_hash import block_hex
from cache.keys import kv_blocks, kv_changes
from cache.redis_client import FAILURES, AsyncClient

log = structlog.get_logger(__name__)

CHANGES_MAXLEN = 10_000  # entries a worker's change stream keeps (about; a reader behind reloads)
# A published chain's blocks are this much older each than the one before (`publish`): a
# microsecond, about four steps of a double at today's unix time; 8,000 blocks span 8 ms
CHAIN_STEP_S = 1e-6

# The ops of a change stream entry: blocks added, blocks removed, the key emptied, and the key
# rewritten (a reader reloads it). `h`: the blocks, as concatenated 16-hex-digit members.
ADD, REMOVE, CLEAR, RESET = b"add", b"rm", b"clear", b"reset"

# One worker's longest held prefix, server side: ARGV[1] is the prompt's block hashes as
# concatenated 16-hex-digit members; returns how many leading ones the key holds. One key
# per script call, so it runs unchanged on Redis Cluster. Sent with EVAL (the server keeps
# it compiled): redis-py's cluster pipelines refuse EVALSHA, and nothing has to be loaded
# on each master first or again after a restart.
_LONGEST_PREFIX = """
local blob = ARGV[1]
local n = math.floor(#blob / 16)
for i = 0, n - 1 do
  if not redis.call('ZSCORE', KEYS[1], string.sub(blob, i * 16 + 1, i * 16 + 16)) then
    return i
  end
end
return n
"""

# A heartbeat's trim, atomically: drops the blocks stored before ARGV[1] (exclusive: "(t")
# and the oldest beyond ARGV[2], then appends one REMOVE entry naming them (numbered ARGV[3];
# appended even when nothing went, so the writer's numbering has no gap) and extends both
# keys' TTLs (ARGV[5] ms). KEYS: the blocks key and the change stream, one slot (hash tag).
# Returns how many blocks went.
_TRIM = """
local removed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #removed > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end
local keep = tonumber(ARGV[2])
local over = redis.call('ZRANGE', KEYS[1], 0, -keep - 1)
if #over > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -keep - 1)
  for _, m in ipairs(over) do removed[#removed + 1] = m end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'seq', ARGV[3], 'op', 'rm',
           'h', table.concat(removed))
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return #removed
"""


class KvIndex:
    def __init__(self, client: AsyncClient, *, ttl_s: float = 30.0,
                 timeout_s: float = 0.05) -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._timeout_s = timeout_s
        self.lookup_errors = 0
        self.publish_errors = 0
        self.last_trouble: BaseException | None = None  # what the last failed operation raised
        self._warned = False
        self._seq: dict[str, int] = {}  # per worker: change stream entries attempted

    def _next_seq(self, worker_id: str) -> int:
        """The worker's next change stream number (a failed write leaves a gap, which tells
        the reader to reload)."""
        seq = self._seq[worker_id] = self._seq.get(worker_id, 0) + 1
        return seq

    def _change(self, pipe: Any, worker_id: str, op: bytes, blob: str = "") -> None:
        """Appends the change to the worker's stream in `pipe`, after the change itself."""
        seq = self._next_seq(worker_id)
        key = kv_changes(worker_id)
        fields: dict[Any, Any] = {"seq": seq, "op": op}
        if blob:
            fields["h"] = blob
        pipe.xadd(key, fields, maxlen=CHANGES_MAXLEN, approximate=True)
        pipe.pexpire(key, self._ttl_ms)

    def _trouble(self, what: str, exc: BaseException) -> None:
        self.last_trouble = exc
        if not self._warned:
            log.warning("kv index: redis unreachable, routing on local estimates", op=what,
                        error=str(exc) or type(exc).__name__)
            self._warned = True

    async def publish(self, worker_id: str, hashes: Sequence[int], now: float) -> bool:
        """Records that `worker_id`'s engine holds these blocks (as of `now`, unix seconds),
        a chain in prompt order: each block scored CHAIN_STEP_S older than the one before
        it, so that a trim of the oldest takes a chain's tail first, as an engine's LRU
        evicts leaves first, and what a worker holds stays leading runs of chains (one
        score for a whole chain let Redis trim by hash order, arbitrary blocks of it, and
        the planner's copy, which reads leading runs, said 8 blocks where 1 was held:
        routing review 2026-12-06)."""
        if not hashes:
            return True
        key = kv_blocks(worker_id)
        members = [block_hex(h) for h in hashes]
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {m: now - i * CHAIN_STEP_S for i, m in enumerate(members)})
        pipe.pexpire(key, self._ttl_ms)
        self._change(pipe, worker_id, ADD, "".join(members))
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                await pipe.execute()
        except FAILURES as exc:
            self.publish_errors += 1
            self._trouble("publish", exc)
            return False
        self._warned = False
        return True

    async def remove(self, worker_id: str, hashes: Sequence[int]) -> bool:
        """The engine evicted these blocks."""
        if not hashes:
            return True
        members = [block_hex(h) for h in hashes]
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(kv_blocks(worker_id), *members)
        self._change(pipe, worker_id, REMOVE, "".join(members))
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                await pipe.execute()
        except FAILURES as exc:
            self.publish_errors += 1
            self._trouble("remove", exc)
            return False
        return True

    async def replace(self, worker_id: str, hashes: Sequence[int], now: float) -> bool:
        """Makes the worker's key hold exactly `hashes` (a resync after Redis trouble lost
        some of the worker's updates)."""
        key = kv_blocks(worker_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        for start in range(0, len(hashes), 10_000):
            pipe.zadd(key, {block_hex(h): now for h in hashes[start:start + 10_000]})
        pipe.pexpire(key, self._ttl_ms)
        self._change(pipe, worker_id, RESET)
        try:
            async with asyncio.timeout(self._timeout_s * 8):
                await pipe.execute()
        except FAILURES as exc:
            self.publish_errors += 1
            self._trouble("replace", exc)
            return False
        self._warned = False
        return True

    async def touch(self, worker_id: str) -> bool:
        """Heartbeat for a worker fed by engine events: the key's TTL only, no trimming."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.pexpire(kv_blocks(worker_id), self._ttl_ms)
        pipe.pexpire(kv_changes(worker_id), self._ttl_ms)
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                await pipe.execute()
        except FAILURES as exc:
            self.publish_errors += 1
            self._trouble("touch", exc)
            return False
        return True

    async def refresh(self, worker_id: str, now: float, max_age_s: float, max_blocks: int) -> int:
        """Heartbeat: drops blocks older than `max_age_s` and the oldest beyond `max_blocks`,
        then extends the key's TTL. Returns the number of blocks removed (-1: Redis trouble).
        One script does it and names the blocks removed in the change stream (REMOVE), so
        readers drop exactly those (a RESET here made every reader reload the whole key at
        almost every heartbeat once blocks began to age out)."""
        seq = self._next_seq(worker_id)
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                removed = await self._redis.eval(
                    _TRIM, 2, kv_blocks(worker_id), kv_changes(worker_id),
                    f"({now - max_age_s}", max_blocks, seq, CHANGES_MAXLEN, self._ttl_ms)
        except FAILURES as exc:
            self.publish_errors += 1
            self._trouble("refresh", exc)
            return -1
        return int(removed)

    async def clear(self, worker_id: str) -> bool:
        """The engine dropped its whole cache (restart, flush): its blocks are gone."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(kv_blocks(worker_id))
        self._change(pipe, worker_id, CLEAR)
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                await pipe.execute()
        except FAILURES as exc:
            self.publish_errors += 1
            self._trouble("clear", exc)
            return False
        return True

    async def size(self, worker_id: str) -> int:
        return int(await self._redis.zcard(kv_blocks(worker_id)))

    async def longest_prefixes(self, worker_ids: Sequence[str],
                               hashes: Sequence[int]) -> Mapping[str, int] | None:
        """Per worker, how many leading blocks of `hashes` its engine holds; one round trip
        (a pipeline of one script call per worker; on a cluster, sent to the masters holding
        them in parallel). None when Redis does not answer in time."""
        if not worker_ids or not hashes:
            return {w: 0 for w in worker_ids}
        blob = "".join(block_hex(h) for h in hashes)
        try:
            async with asyncio.timeout(self._timeout_s):  # no task per lookup, as wait_for's
                replies = await self._lookup(worker_ids, blob)
        except FAILURES as exc:
            self.lookup_errors += 1
            self._trouble("lookup", exc)
            return None
        self._warned = False
        return {w: int(n) for w, n in zip(worker_ids, replies, strict=True)}

    async def _lookup(self, worker_ids: Sequence[str], blob: str) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.eval(_LONGEST_PREFIX, 1, kv_blocks(worker_id), blob)
        return await pipe.execute()
