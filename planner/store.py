"""Publishes the planner core's events to Redis: the durable record of programs and calls.

Writes happen off the request path, in order, from a queue. If Redis is unreachable the
planner keeps serving; failed writes are counted and logged once per outage.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog

from cache import keys
from planner.core.model import CallChanged, CallRecord, Event, ProgramEnded, ProgramRegistered

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Write:
    kind: str  # "program" | "call" | "ended"
    program_id: str
    tenant: str
    fields: dict[str, str]


def _call_json(call: CallRecord) -> str:
    return json.dumps({
        "call_id": call.call_id, "thread_id": call.thread_id, "parents": list(call.parents),
        "state": call.state.value, "worker_id": call.worker_id, "priority": call.priority,
        "prompt_tokens": call.prompt_tokens_used or call.prompt_tokens,
        "completion_tokens": call.completion_tokens, "cached_tokens": call.cached_tokens,
        "service_s": round(call.service_s, 6),
    })


def snapshot(event: Event, wall_now: float) -> _Write:
    """Copies what an event says now: records keep changing after the event is taken."""
    if isinstance(event, ProgramRegistered):
        p = event.program
        return _Write("program", p.program_id, p.tenant, {
            "tenant": p.tenant, "state": "open", "program_class": p.program_class,
            "created_wall": f"{wall_now:.6f}",
            "deadline_s": "" if p.deadline_at is None else f"{p.deadline_at - p.created_at:.6f}",
        })
    if isinstance(event, CallChanged):
        c = event.call
        return _Write("call", c.program_id, c.tenant, {c.call_id: _call_json(c)})
    if isinstance(event, ProgramEnded):
        p = event.program
        return _Write("ended", p.program_id, p.tenant, {
            "state": "ended", "ended_wall": f"{wall_now:.6f}",
            "attained_service_s": f"{p.attained_service_s:.6f}", "calls": str(len(p.calls)),
        })
    raise TypeError(f"unknown event {event!r}")


class ProgramStore:
    def __init__(self, client: aioredis.Redis, timeout_s: float = 0.5) -> None:
        self._redis = client
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self.failed_writes = 0
        self._down = False

    def publish(self, events: list[Event]) -> None:
        now = time.time()
        for event in events:
            self._queue.put_nowait(snapshot(event, now))

    async def run(self) -> None:
        while True:
            write = await self._queue.get()
            try:
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
            pipe.zadd(keys.tenant_programs(w.tenant), {w.program_id: float(w.fields["created_wall"])})
        await pipe.execute()
