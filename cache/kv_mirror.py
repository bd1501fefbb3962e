"""The planner's copy of the KV-reference index: what cache/kv_index.py keeps in Redis, held
in memory and kept current from each worker's change stream, so that an admission's lookup
is a local one (cache/kv_holdings.py) instead of a Redis round trip on the call's path.

One follower task per worker the planner knows (`follow`): it takes the id of the worker's
stream's last entry, then loads its key (which has that change and maybe later ones:
applying those again changes nothing, the last change of a block wins), then reads the
stream from there (a
blocking XREAD, then a pause of `pause_s` so that one read takes the changes of several
calls), applying each change in order. An entry that is not the next of its writer (a
failed write, a stream capped past what was read, a restarted writer), a RESET (the worker
rewrote its key) or Redis trouble makes it reload the key. Its copy trails Redis by about
`pause_s` plus a round trip, as a lookup trailed a worker's write before.

`longest_prefixes` answers for the asked-for workers whose copies are loaded, and leaves
out those whose copy is not (just after one registered, or while its stream cannot be read):
for them routing falls back on its own approximate index (planner/core/routing.py,
`held_blocks`), as for every worker when a Redis lookup failed. None when no copy is loaded.
One worker's copy lagging no longer turns the lookup off for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from cache.keys import kv_blocks, kv_changes
from cache.kv_holdings import KvHoldings
from cache.kv_index import ADD, CLEAR, REMOVE
from cache.redis_client import FAILURES, AsyncClient
from workers.kv_events import AllBlocksCleared, BlockRemoved, BlockStored

log = structlog.get_logger(__name__)

ANY_SEQ = -1  # loaded after an entry with no number: the next entry is taken as next


def hashes_of(blob: bytes) -> tuple[int, ...]:
    """Block hashes from concatenated 16-hex-digit members (cache/block_hash.block_hex)."""
    return tuple(int(blob[i:i + 16], 16) for i in range(0, len(blob), 16))


class KvMirror:
    def __init__(self, client: AsyncClient, *, timeout_s: float = 0.5,
                 pause_s: float = 0.01) -> None:
        self._redis = client
        self._holdings = KvHoldings()
        self._loaded: set[str] = set()  # workers whose copy is current
        self._first_load: dict[str, asyncio.Event] = {}  # set once a worker's copy was loaded
        self._followers: dict[str, asyncio.Task[None]] = {}
        # a blocking read waits at most half the client's socket timeout
        self._block_ms = max(1, min(1000, int(timeout_s * 500)))
        self._pause_s = pause_s
        self.reloads = 0
        self.read_errors = 0
        self._warned = False

    def follow(self, worker_ids: Iterable[str]) -> set[str]:
        """Keeps copies of exactly these workers' keys (the planner's workers); returns the
        workers newly followed."""
        wanted = set(worker_ids)
        new = wanted - self._followers.keys()
        for worker_id in wanted - new:
            if self._followers[worker_id].done():  # ended by a bug: started again, reloading
                log.error("kv mirror: follower ended; started again", worker_id=worker_id)
                self._followers[worker_id] = asyncio.get_running_loop().create_task(
                    self._follow(worker_id))
        for worker_id in new:
            self._first_load[worker_id] = asyncio.Event()
            self._followers[worker_id] = asyncio.get_running_loop().create_task(
                self._follow(worker_id))
        for worker_id in self._followers.keys() - wanted:
            self._followers.pop(worker_id).cancel()
            self._first_load.pop(worker_id, None)
            self._loaded.discard(worker_id)
            self._holdings.forget(worker_id)
        return new

    async def first_loaded(self, worker_id: str, timeout_s: float) -> bool:
        """Waits (at most `timeout_s`) until the followed worker's copy was loaded once."""
        event = self._first_load.get(worker_id)
        if event is None or event.is_set():
            return event is not None
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
        except TimeoutError:
            return False
        return True

    def longest_prefixes(self, worker_ids: Sequence[str],
                         hashes: Sequence[int]) -> Mapping[str, int] | None:
        """Per worker whose copy is loaded, how many leading blocks of `hashes` its engine
        holds (as KvIndex.longest_prefixes answers); the others left out (not known); None
        when none of them is loaded."""
        loaded = self._loaded
        if all(w in loaded for w in worker_ids):
            return self._holdings.longest_prefixes(worker_ids, hashes)
        known = [w for w in worker_ids if w in loaded]
        return self._holdings.longest_prefixes(known, hashes) if known else None

    async def close(self, wait_s: float = 2.0) -> None:
        """Stops the followers; waits `wait_s` at most (a cancellation that lands in the
        Redis client's own timeouts can come out as a timeout, which a follower retries:
        it then stops at its next turn, no longer listed)."""
        tasks = list(self._followers.values())
        self._followers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)

    async def _load(self, worker_id: str, me: asyncio.Task[Any] | None) -> tuple[Any, int]:
        """The worker's key into the copy; returns where its stream stands (id, seq).
        Raises CancelledError when this follower was stopped meanwhile (nothing applied)."""
        pipe = self._redis.pipeline(transaction=False)  # in order, on one slot's node
        pipe.xrevrange(kv_changes(worker_id), count=1)
        pipe.zrange(kv_blocks(worker_id), 0, -1)
        last, members = await pipe.execute()
        if self._followers.get(worker_id) is not me:
            raise asyncio.CancelledError  # a newer follower of this worker owns its copy
        self._holdings.apply(worker_id, [AllBlocksCleared(),
                                         BlockStored(hashes_of(b"".join(members)), None)])
        if not last:
            return "0-0", 0
        entry_id, fields = last[0]
        try:
            return entry_id, int(fields[b"seq"])
        except (KeyError, ValueError):  # not a writer's entry: whatever comes next is next
            return entry_id, ANY_SEQ

    async def _follow(self, worker_id: str) -> None:
        key = kv_changes(worker_id)
        last_id: Any = None
        seq = 0
        backoff = 0.05
        me = asyncio.current_task()
        while self._followers.get(worker_id) is me:  # until stopped (see close)
            try:
                if last_id is None:
                    last_id, seq = await self._load(worker_id, me)
                    self._loaded.add(worker_id)
                    self._first_load[worker_id].set()
                    self.reloads += 1
                reply: Any = await self._redis.xread({key: last_id}, count=1000,
                                                     block=self._block_ms)
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        last_id, seq, current = entry_id, *self._apply(worker_id, seq, fields)
                        if not current:
                            last_id = None  # reload (from the key, which has it all)
                            break
                self._warned = False
                backoff = 0.05
                await asyncio.sleep(self._pause_s)
            except Exception as exc:  # Redis trouble, or an entry this reader cannot read
                if self._followers.get(worker_id) is not me:
                    return  # stopped meanwhile (a cancellation seen as a timeout), maybe
                    # replaced by a new follower of the same worker: its state is not ours
                self.read_errors += 1
                self._loaded.discard(worker_id)  # no answer from a copy not known current
                last_id = None
                if not isinstance(exc, FAILURES):
                    log.error("kv mirror: unreadable change; reloading", worker_id=worker_id,
                              error=repr(exc))
                elif not self._warned:
                    log.warning("kv mirror: redis unreachable, routing on local estimates",
                                worker_id=worker_id, error=str(exc) or type(exc).__name__)
                    self._warned = True
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)

    def _apply(self, worker_id: str, seq: int, fields: Mapping[bytes, bytes]) -> tuple[int, bool]:
        """Applies one entry; returns its seq and whether the copy is still current."""
        got, op = int(fields[b"seq"]), fields[b"op"]
        if op == CLEAR:  # the whole key emptied: whatever came before
            self._holdings.apply(worker_id, [AllBlocksCleared()])
            return got, True
        if (got != seq + 1 and seq != ANY_SEQ) or op not in (ADD, REMOVE):  # missed one, RESET
            return got, False
        blocks = hashes_of(fields.get(b"h", b""))
        self._holdings.apply(worker_id, [BlockStored(blocks, None) if op == ADD
                                         else BlockRemoved(blocks)])
        return got, True

