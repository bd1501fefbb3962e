"""A program's end, told to every gateway replica.

A program's span lives in the gateway that started it (tracing/program_spans.py), but its
client may end the program through another replica (a load balancer that spreads RPCs or
HTTP requests): the span then stayed open until it expired as idle, 30 minutes by default
(replicas review 2026-12-05 F3). The gateway that ends a program whose span it does not
hold adds the end, with the program's summary, to a Redis stream (cache/keys.py
`program_ends`); every gateway tails the stream and ends the span it holds.

A record missed (Redis down, or trimmed from the capped stream before a stopped replica read
it) leaves the span to expire when idle, as before: spans are telemetry, never the
program's state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from cache import keys
from cache.redis_client import AsyncClient, operation_bound, text, within

log = structlog.get_logger(__name__)

STREAM_CAP = 10_000  # records kept (approximately): the ends of the last few seconds to minutes
Ended = Callable[[str, Mapping[str, Any]], None]  # (program id, the summary's attributes)


class EndsUnavailable(Exception):
    """Redis did not answer in time (or failed under a second ago)."""


class ProgramEnds:
    def __init__(self, client: AsyncClient, timeout_s: float) -> None:
        self._redis = client
        self._timeout_s = timeout_s
        self._bound = operation_bound(timeout_s)
        self._last_id = "$"  # from the stream's end when the tail starts

    async def announce(self, program_id: str, attributes: Mapping[str, Any]) -> None:
        """Tells the other replicas that `program_id` (the mesh's id, inside its tenant)
        ended; Redis trouble: nothing told (the span there expires when idle)."""
        fields = {"program": program_id, "attributes": json.dumps(dict(attributes))}
        try:
            await self._within(self._redis.xadd(keys.program_ends(), fields,  # type: ignore[arg-type]
                                                maxlen=STREAM_CAP, approximate=True))
        except EndsUnavailable as exc:
            log.debug("program end not told to other replicas", program_id=program_id,
                      error=str(exc) or type(exc).__name__)

    async def read(self, ended: Ended, block_ms: int) -> int:
        """Calls `ended` for each end added since the last read (or since the first read
        began), waiting up to `block_ms` for one; returns how many. EndsUnavailable on
        Redis trouble."""
        if self._last_id == "$":  # where the tail starts: ends before it are not ours
            last = await self._within(self._redis.xrevrange(keys.program_ends(), count=1))
            self._last_id = text(last[0][0]) if last else "0-0"
        records: Any = await self._within(self._redis.xread(
            {keys.program_ends(): self._last_id}, count=500, block=block_ms))
        n = 0
        for _, entries in records or []:
            for record_id, fields in entries:
                self._last_id = text(record_id)
                try:
                    attributes = json.loads(fields[b"attributes"])
                    ended(text(fields[b"program"]), attributes)
                except (KeyError, ValueError, TypeError):  # not a record of ours: skipped
                    continue
                n += 1
        return n

    async def run(self, ended: Ended) -> None:
        """Tails the stream for as long as the gateway runs; rides out Redis outages."""
        # each read waits for news at most a quarter of the client's operation bound: an
        # idle stream is no outage
        block_ms = max(1, min(1000, int(self._timeout_s * 250)))
        while True:
            try:
                await self.read(ended, block_ms)
            except EndsUnavailable:
                await asyncio.sleep(1.0)

    async def _within(self, op: Any) -> Any:
        # Not through the client's outage view (cache/outage.py): this tail asks Redis every
        # quarter second, so it would find every outage first, and the caches, told Redis
        # is out, would skip their calls rather than fail them (their redis_error count
        # would stay 0 through an outage); a failed read here waits a second instead.
        return await within(op, self._bound, EndsUnavailable)
