"""Program ends told between gateway replicas (tracing/program_ends.py), in a real Redis and
a Redis Cluster: an end announced by one is read by another, once, with its summary's
attributes; ends from before a replica began to tail are not its; a record not ours is
skipped; without Redis nothing is told and nothing raises."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cache import keys
from tests.ports import closed_port
from tests.redis_cluster import RedisTarget
from tracing.program_ends import EndsUnavailable, ProgramEnds


class Seen:
    def __init__(self) -> None:
        self.ends: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, program_id: str, attributes: Any) -> None:
        self.ends.append((program_id, dict(attributes)))


async def test_an_end_told_by_one_replica_is_read_by_another(redis_target: RedisTarget) -> None:
    client = redis_target.client()
    try:
        before = f"p-{uuid.uuid4().hex}"
        await ProgramEnds(client, 1.0).announce(before, {"n": 1})  # before the tail began
        tail, seen = ProgramEnds(client, 1.0), Seen()
        assert await tail.read(seen, block_ms=1) == 0
        program = f"p-{uuid.uuid4().hex}"
        await ProgramEnds(client, 1.0).announce(program, {"ostinato.program.calls.completed": 2,
                                                          "gen_ai.usage.output_tokens": 8})
        await client.xadd(keys.program_ends(), {"something": "else"})  # not a record of ours
        assert await tail.read(seen, block_ms=1000) == 1
        assert seen.ends == [(program, {"ostinato.program.calls.completed": 2,
                                        "gen_ai.usage.output_tokens": 8})]
        assert await tail.read(seen, block_ms=1) == 0  # each end once
    finally:
        await client.aclose()


async def test_without_redis_nothing_is_told_and_the_tail_says_so() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    ends = ProgramEnds(client, 0.2)
    try:
        await ends.announce("p", {"n": 1})  # no error: the span there expires when idle
        with pytest.raises(EndsUnavailable):
            await ends.read(Seen(), block_ms=1)
    finally:
        await client.aclose()
