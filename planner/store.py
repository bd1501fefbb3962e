"""Persists the planner core's events to Redis, and reads open programs back at start.

Writes happen off the request path, in order, from a queue; `publish` returns a future
that resolves once that batch is written (the service awaits it before handing out a
grant, so a restarted planner knows every call it started). If Redis is unreachable the
planner keeps serving; failed writes are counted and logged once per outage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog

from cache import keys
from ostinato.clock import Clock
from planner.core.model import CallChanged, Event, Program, ProgramEnded, ProgramRegistered
from planner.records import CorruptRecord, call_json, program_fields, program_from_fields

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Write:
    kind: str  # "program" | "call" | "ended"
    program_id: str
    tenant: str
    fields: dict[str, str]


def snapshot(event: Event, wall_now: float, clock_now: float) -> _Write:
    """Copies what an event says now: records keep changing after the event is taken."""
    if isinstance(event, ProgramRegistered):
        p = event.program
        return _Write("program", p.program_id, p.tenant, program_fields(p, wall_now, clock_now))
    if isinstance(event, CallChanged):
        c = event.call
        return _Write("call", c.program_id, c.tenant, {c.call_id: call_json(c, wall_now, clock_now)})
    if isinstance(event, ProgramEnded):
        p = event.program
        return _Write("ended", p.program_id, p.tenant, {
            "state": "ended", "ended_wall": f"{wall_now:.6f}",
            "attained_service_s": f"{p.attained_service_s:.6f}", "calls": str(len(p.calls)),
        })
    raise TypeError(f"unknown event {event!r}")


class ProgramStore:
    def __init__(self, client: aioredis.Redis, clock: Clock, timeout_s: float = 0.5) -> None:
        self._redis = client
        self._clock = clock
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[_Write | asyncio.Future[None]] = asyncio.Queue()
        self.failed_writes = 0
        self._down = False

    def publish(self, events: list[Event]) -> asyncio.Future[None]:
        """Queues the events' writes; the future resolves when they are done (or failed)."""
        wall, now = time.time(), self._clock.now()
        for event in events:
            self._queue.put_nowait(snapshot(event, wall, now))
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(marker)
        return marker

    async def run(self) -> None:
        while True:
            write = await self._queue.get()
            try:
                if isinstance(write, asyncio.Future):
                    if not write.done():
                        write.set_result(None)
                    continue
                await asyncio.wait_for(self._apply(write), self._timeout_s)
                if self._down:
                    log.info("redis reachable again")
                    self._down = False
            except (aioredis.RedisError, OSError, TimeoutError) as exc:
                self.failed_writes += 1
                if not self._down:
                    log.warning("redis unreachable: program state not persisted", error=str(exc))
                    self._down = True
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        await self._queue.join()

    async def _apply(self, w: _Write) -> None:
        pipe = self._redis.pipeline(transaction=False)
        if w.kind == "call":
            pipe.hset(keys.program_calls(w.program_id), mapping=w.fields)
        else:
            pipe.hset(keys.program_meta(w.program_id), mapping=w.fields)
        if w.kind == "program":
            created = float(w.fields["created_wall"])
            pipe.zadd(keys.tenant_programs(w.tenant), {w.program_id: created})
            pipe.zadd(keys.open_programs(), {w.program_id: created})
        elif w.kind == "ended":
            pipe.zrem(keys.open_programs(), w.program_id)
        await pipe.execute()

    async def load_open(self) -> list[Program]:
        """The programs a previous planner left open, rebuilt on this planner's clock."""
        ids = [i.decode() for i in await self._redis.zrange(keys.open_programs(), 0, -1)]
        programs = []
        for program_id in ids:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(keys.program_meta(program_id))
            pipe.hgetall(keys.program_calls(program_id))
            meta, calls = await pipe.execute()
            meta = {k.decode(): v.decode() for k, v in meta.items()}
            calls = {k.decode(): v.decode() for k, v in calls.items()}
            if meta.get("state") == "ended":
                await self._redis.zrem(keys.open_programs(), program_id)
                continue
            try:
                programs.append(program_from_fields(program_id, meta, calls, time.time(),
                                                    self._clock.now()))
            except CorruptRecord as exc:
                log.warning("skipping unreadable program record", error=str(exc))
        return programs
