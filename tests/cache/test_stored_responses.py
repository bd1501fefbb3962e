"""Stored responses of the Responses API (cache/stored_responses.py) in a real Redis and a
Redis Cluster: kept per tenant, read back, expired, deleted; ids not the gateway's name no
key; a Redis that is not there is an error on read and a logged miss on write."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from cache import keys
from cache.redis_server import free_port
from cache.stored_responses import ResponsesUnavailable, StoredResponses
from tests.redis_cluster import RedisTarget

RESPONSE = {"id": "", "object": "response", "status": "completed",
            "output": [{"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Bonjour"}]}]}
CONTEXT = [{"type": "message", "role": "user", "content": "Say hello in French."}]
CALL = {"program_id": "acme/p1", "call_id": "c1", "thread_id": "main"}


def new_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


async def test_a_response_is_its_tenants_until_deleted(redis_target: RedisTarget) -> None:
    client = redis_target.client()
    stored = StoredResponses(client, ttl_s=60, timeout_s=1.0)
    rid = new_id()
    try:
        assert await stored.put("acme", rid, CONTEXT, {**RESPONSE, "id": rid}, CALL)
        record = await stored.get("acme", rid)
        assert record == {"context": CONTEXT, "response": {**RESPONSE, "id": rid}, "call": CALL}
        assert await stored.get("globex", rid) is None  # never across tenants
        assert not await stored.delete("globex", rid)
        assert 0 < await client.pttl(keys.stored_response("acme", rid)) <= 60_000
        assert await stored.delete("acme", rid)
        assert await stored.get("acme", rid) is None
        assert not await stored.delete("acme", rid)
    finally:
        await client.aclose()


@pytest.mark.parametrize("bad", ["resp_1", "resp_" + "0" * 31, "RESP_" + "0" * 32,
                                 "resp_" + "0" * 32 + "}", "{t:globex}:resp_" + "0" * 32, ""])
async def test_an_id_the_gateway_never_makes_names_no_key(bad: str) -> None:
    """Checked before any key is built: no Redis is asked (this client has none)."""
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.1)
    stored = StoredResponses(client, ttl_s=60, timeout_s=0.2)
    try:
        assert await stored.get("acme", bad) is None
        assert not await stored.delete("acme", bad)
    finally:
        await client.aclose()


async def test_without_redis_a_read_fails_clearly_and_a_write_is_skipped() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.1)
    stored = StoredResponses(client, ttl_s=60, timeout_s=0.2)
    rid = new_id()
    try:
        with pytest.raises(ResponsesUnavailable):
            await stored.get("acme", rid)
        with pytest.raises(ResponsesUnavailable):
            await stored.delete("acme", rid)
        assert not await stored.put("acme", rid, CONTEXT, {**RESPONSE, "id": rid}, CALL)
    finally:
        await client.aclose()
