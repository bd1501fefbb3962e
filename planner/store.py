"""Persists the planner core's events to Redis, and reads open programs back at start.

Writes happen off the request path, from one task. Each record (a program's, a call's)
is written as its latest state: while a write is waiting or being retried, a newer state
of the same record replaces it in place, so records are written in the order they first
changed. `publish` returns a future that resolves once everything published so far is in
Redis (the service awaits it before handing out a grant or acknowledging a completion,
so a restarted planner knows every call it started or finished).

A write that fails or times out (Redis stopped, or stalled on a busy machine) is never
dropped: it is retried, with backoff, until Redis takes it. Meanwhile the planner keeps
serving: the futures of `publish` resolve at once while Redis is failing, and the
outage is counted and logged once; not with `hold_in_outage` (planner HA), where they
resolve only once their writes land: a planner whose lease lasts through the outage
answers then, and one that loses it is stopped with its callers waiting, who ask its
successor (an answer given before the write landed named a program the successor never
heard of: NOT_FOUND for each of its later calls). Only past `max_pending` records waiting (a very long
outage) are the oldest dropped, and counted; and a record that fails to write for any other
reason (a bug: one that cannot be encoded) is dropped alone, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable

import structlog

from cache import keys
from cache.redis_client import FAILURES, AsyncClient, text
from ostinato.clock import Clock
from planner.core.model import Event, Program
from planner.fencing import Batches, FencedOut, Fencing
from planner.records import CorruptRecord, program_from_fields
from planner.store_writes import Write, snapshot

log = structlog.get_logger(__name__)

MAX_BATCH = 500  # records per pipeline
_RETRIED = (FencedOut, *FAILURES)  # what a write fails with that is not the record's fault


class ProgramStore:
    def __init__(self, client: AsyncClient, clock: Clock, timeout_s: float = 0.5, *,
                 max_pending: int = 100_000, max_backoff_s: float = 1.0,
                 ended_ttl_s: float = 86_400.0, hold_in_outage: bool = False,
                 linger_s: float = 0.0) -> None:
        """`ended_ttl_s`: an ended program's records stay in Redis this long, then expire.
        `hold_in_outage`: `publish`'s futures wait for their writes through an outage.
        `linger_s`: writes wait this long for others to go with them (a record changed
        again meanwhile is written once) unless someone waits for them (`hurry`)."""
        self._hold_in_outage = hold_in_outage
        self._linger_s = linger_s
        self._hurried = 0  # writes up to this publish are awaited: none of them lingers
        self._hurry = asyncio.Event()  # wakes a lingering batch
        self._ended_ttl_s = ended_ttl_s
        self._redis = client
        self._clock = clock
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._max_backoff_s = max_backoff_s
        # record key -> (the publish that first changed it since it was last written, write)
        self._pending: dict[tuple[str, ...], tuple[int, Write]] = {}
        self._seq = 0  # publishes so far
        self._written = 0  # every publish up to this one is in Redis
        self._markers: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._busy = False  # a batch is being written
        self.failed_writes = 0  # failed attempts (each is retried)
        self.dropped_writes = 0  # records given up past max_pending
        self._down = False
        # Every write carries the lease token (planner/fencing.py); a refused one ends this
        # planner's term: `on_fenced` is told, and the writer stops.
        self.fencing = Fencing(client)
        self.on_fenced: Callable[[str], None] | None = None

    @property
    def pending(self) -> int:
        """Records waiting to be written (or retried)."""
        return len(self._pending) + (1 if self._busy else 0)

    def publish(self, events: list[Event]) -> asyncio.Future[None]:
        """Queues the events' writes; the future resolves when they and every write queued
        before them are in Redis, or at once while Redis is failing."""
        self._seq += 1
        wall, now = time.time(), self._clock.now()
        for event in events:
            self._queue(snapshot(event, wall, now))
        self._trim()
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._pending and not self._busy:
            self._written = self._seq
            marker.set_result(None)
        elif self._down and not self._hold_in_outage:
            marker.set_result(None)  # Redis is failing: nobody waits through an outage
        else:
            self._markers.append((self._seq, marker))
        if self._pending:
            self._wake.set()
        return marker

    def hurry(self) -> None:
        """Someone waits for what is queued: it is written now, not after `linger_s`, in
        every batch it takes (however many, retries too) until it is all in Redis."""
        self._hurried = self._seq
        self._hurry.set()

    def stop_lingering(self) -> None:
        """From now on every write goes as soon as it can (the planner is stopping: a write
        lingering when its tasks end would be lost)."""
        self._linger_s = 0.0
        self.hurry()

    def _queue(self, write: Write) -> None:
        if write.kind == "program" and write.fresh:  # an id registered again supersedes its end
            self._pending.pop(("ended", write.program_id), None)
        dirty = self._pending.get(write.key)
        if dirty is not None and dirty[1].record is not write.record:
            # a record of a new run of the id (its program, or a call of an id used by the
            # last run): written after everything of the earlier run still waiting, so that
            # the new run's write removes those records, not its own (store review)
            del self._pending[write.key]
        elif dirty is not None and dirty[1].fresh:
            write = dataclasses.replace(write, fresh=True)  # (its close, before it is written)
        self._pending[write.key] = (dirty[0] if dirty else self._seq, write)

    def _trim(self) -> None:
        over = len(self._pending) - self._max_pending
        if over <= 0:
            return
        for key in list(itertools.islice(self._pending, over)):
            del self._pending[key]
        if not self.dropped_writes:
            log.error("redis unreachable too long: oldest program records dropped",
                      max_pending=self._max_pending)
        self.dropped_writes += over

    def _resolve(self, everything: bool = False) -> None:
        while self._markers and (everything or self._markers[0][0] <= self._written):
            marker = self._markers.popleft()[1]
            if not marker.done():
                marker.set_result(None)

    async def run(self) -> None:
        backoff = 0.05
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._linger_s and self._written >= self._hurried:  # nobody waits on these
                self._hurry.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger_s):
                        await self._hurry.wait()
            batch = {k: self._pending.pop(k)
                     for k in list(itertools.islice(self._pending, MAX_BATCH))}
            self._busy = True
            try:
                try:
                    async with asyncio.timeout(self._timeout_s + 0.002 * len(batch)):
                        await self._apply([w for _, w in batch.values()])
                except _RETRIED:
                    raise
                except Exception:  # a bug, or a record that cannot be written
                    log.exception("program records failed to write: writing each alone",
                                  records=len(batch))
                    await self._isolate(batch)
            except FencedOut as exc:
                self._fenced(batch, exc)
                raise
            except FAILURES as exc:
                self.failed_writes += 1
                self._requeue(batch)
                if not self._down:
                    log.warning("redis unreachable: program state not saved yet, retrying",
                                error=repr(exc))
                    self._down = True
                self._resolve(everything=not self._hold_in_outage)
                self._busy = False
                await asyncio.sleep(backoff)
                backoff = min(self._max_backoff_s, backoff * 2)
                continue
            self._busy = False
            backoff = 0.05
            if self._down:
                log.info("redis reachable again: program state saved",
                         pending=len(self._pending))
                self._down = False
            self._written = min((seq for seq, _ in self._pending.values()),
                                default=self._seq + 1) - 1
            self._resolve()

    async def _isolate(self, batch: dict[tuple[str, ...], tuple[int, Write]]) -> None:
        """Writes a batch that failed with no Redis failure one record at a time, so that
        only a record that fails alone is dropped (counted, logged), not the records batched
        with it (an "ended" among them would leave its program open in Redis). A Redis
        failure meanwhile is raised with the records not written yet left in `batch`."""
        for key in list(batch):
            write = batch[key][1]
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._apply([write])
            except _RETRIED:
                raise
            except Exception as exc:  # (its traceback: the batch's, logged before)
                self.dropped_writes += 1
                log.error("a program record cannot be written: dropped", kind=write.kind,
                          program_id=write.program_id, error=repr(exc))
            del batch[key]

    def _fenced(self, batch: dict[tuple[str, ...], tuple[int, Write]], exc: FencedOut) -> None:
        """Another planner took over: nothing more is written from here (its writes would
        be refused too); those who wait are released (held: left to the term's end, which
        cuts their calls), and the owner told."""
        log.error("a write was refused: another planner holds the lease", error=str(exc))
        self._requeue(batch)
        self._busy = False
        if not self._hold_in_outage:  # (held: nothing unwritten is acknowledged)
            self._resolve(everything=True)
        if self.on_fenced is not None:
            self.on_fenced(str(exc))

    def _requeue(self, batch: dict[tuple[str, ...], tuple[int, Write]]) -> None:
        """Puts a failed batch back in front, each record at its newest state. A newer write
        of another record under the same key (a new run of the id, a call's next attempt)
        supersedes it where it waits, after the rest of the batch: a new run's write comes
        after the earlier run's it removes (diff review: one moved in front was overwritten
        by them, or marked ended). A new run stays one (`fresh`) at its newer state."""
        merged = {}
        for key, (seq, write) in batch.items():
            newer = self._pending.get(key)
            if newer is not None and newer[1].record is not write.record:
                self._pending[key] = (min(seq, newer[0]), newer[1])  # (its publish waits on it)
                continue
            if newer is not None:
                del self._pending[key]
                write = dataclasses.replace(newer[1], fresh=newer[1].fresh or write.fresh)
            merged[key] = (seq, write)
        merged.update(self._pending)
        self._pending = merged
        self._trim()

    async def flush(self) -> None:
        """Until every record is written (bounded by the caller: Redis may be down)."""
        self.hurry()
        while self._pending or self._busy:
            await asyncio.sleep(0.02)

    async def _apply(self, writes: list[Write]) -> None:
        """One fenced script per slot written (planner/fencing.py), all in one pipeline. A
        program run registered and ended in the same batch is written once, ended."""
        ended_here = {w.program_id: w.record for w in writes if w.kind == "ended"}
        # (of the same run: an earlier run's end and the id's new run may share a batch)
        registered = {w.program_id: w.fields() for w in writes
                      if w.kind == "program" and ended_here.get(w.program_id) is w.record}
        batches = Batches()
        trims: dict[str, float] = {}  # tenant -> its index's entries to drop: created before
        for w in writes:
            meta = keys.program_meta(w.program_id)
            if w.fresh:  # nothing of an earlier run of the id kept: its calls, its expiry
                batches.op("DEL", keys.program_calls(w.program_id))
                batches.op("DEL", meta)
                if w.program_id not in registered:  # (ended here: expired again at once)
                    batches.op("PERSIST", keys.fence(meta))
            if w.kind == "program" and w.program_id in registered:
                continue  # written with its end, below
            fields = w.fields()
            if w.kind == "call":
                batches.op("HSET", keys.program_calls(w.program_id), *_flat(fields))
            elif w.kind == "program":
                batches.op("HSET", meta, *_flat(fields))
                batches.op("ZADD", keys.tenant_programs(w.tenant), fields["created_wall"],
                           w.program_id)
                batches.op("ZADD", keys.open_programs(), fields["created_wall"], w.program_id)
            else:  # ended
                first = registered.get(w.program_id)
                if first is not None:
                    batches.op("ZADD", keys.tenant_programs(w.tenant), first["created_wall"],
                               w.program_id)
                batches.op("HSET", meta, *_flat({**(first or {}), **fields}))
                batches.op("ZREM", keys.open_programs(), w.program_id)
                ttl = max(1, int(self._ended_ttl_s))
                for key in (meta, keys.program_calls(w.program_id), keys.fence(meta)):
                    batches.op("EXPIRE", key, ttl)
                ended = float(fields["ended_wall"])
                trims[w.tenant] = max(trims.get(w.tenant, ended - ttl), ended - ttl)
        for tenant, before in trims.items():
            # the tenant's index forgets programs whose records have expired (once a batch:
            # a batch of one-call programs ended many of one tenant's)
            batches.op("ZREMRANGEBYSCORE", keys.tenant_programs(tenant), "-inf",
                       f"{before:.6f}")
        await self.fencing.run(list(batches.by_fence.values()))

    async def load_open(self) -> list[Program]:
        """The programs a previous planner left open, rebuilt on this planner's clock. With a
        lease token, each record's fence is raised as it is read (a claim): the planner
        before can change none of them after."""
        listing = Batches()
        listing.op("ZRANGE", keys.open_programs(), 0, -1)
        (ids,) = await self.fencing.run(list(listing.by_fence.values()))
        reads = Batches()
        for raw in ids[0]:
            program_id = text(raw)
            reads.op("HGETALL", keys.program_meta(program_id))
            reads.op("HGETALL", keys.program_calls(program_id))
        programs, ended = [], Batches()
        for batch, (meta, calls) in zip(reads.by_fence.values(),
                                        await self.fencing.run(list(reads.by_fence.values())),
                                        strict=True):
            program_id = keys.hash_tag(batch.keys[0]).removeprefix("prog:")
            fields, records = _pairs(meta), _pairs(calls)
            if fields.get("state") == "ended":
                ended.op("ZREM", keys.open_programs(), program_id)
                continue
            try:
                programs.append(program_from_fields(program_id, fields, records, time.time(),
                                                    self._clock.now()))
            except CorruptRecord as exc:
                log.warning("skipping unreadable program record", error=str(exc))
        await self.fencing.run(list(ended.by_fence.values()))
        return programs


    async def load_ended(self, program_id: str) -> tuple[Program, float] | None:
        """A program ended and written as such (its records not expired yet), rebuilt on
        this planner's clock, with how long it ran (created to ended, seconds); None if
        its records are not those of an ended program. For an EndProgram retried on a
        planner that did not end it (its answer lost with the planner that did)."""
        reads = Batches()
        reads.op("HGETALL", keys.program_meta(program_id))
        reads.op("HGETALL", keys.program_calls(program_id))
        async with asyncio.timeout(self._timeout_s * 4):
            ((meta, calls),) = await self.fencing.run(list(reads.by_fence.values()))
        fields = _pairs(meta)
        if fields.get("state") != "ended":
            return None
        try:
            program = program_from_fields(program_id, fields, _pairs(calls), time.time(),
                                          self._clock.now())
            program.attained_service_s = float(fields.get("attained_service_s", 0.0))
            ran_s = float(fields["ended_wall"]) - float(fields["created_wall"])
        except (CorruptRecord, KeyError, ValueError) as exc:
            log.warning("skipping unreadable program record", error=str(exc))
            return None
        return program, ran_s


def _flat(fields: dict[str, str]) -> list[str]:
    return [x for pair in fields.items() for x in pair]


def _pairs(flat: Iterable[object]) -> dict[str, str]:
    """HGETALL's reply from a script (a flat list of bytes) as a dict of str."""
    items = [text(x) for x in flat]
    return dict(zip(items[::2], items[1::2], strict=True))
