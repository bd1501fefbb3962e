"""Stored responses of the Responses API (cache/stored_responses.py) in a real Redis and a
Redis Cluster: kept per tenant, continued along their chain (its TTL renewed), read back
(a turn and the chain before it, for listing), deleted; a chain with a turn gone cannot be
continued; ids not the gateway's name no key; a Redis that is not there is an error on read
and a logged miss on write."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cache import keys
from cache.stored_responses import (
    MAX_CHAIN,
    RECORD_OVERHEAD,
    BrokenChain,
    ChainTooLong,
    ResponsesUnavailable,
    StoredResponses,
)
from tests.ports import closed_port
from tests.redis_cluster import RedisTarget


def new_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def said(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": text}


def response(rid: str, answer: str) -> dict[str, Any]:
    return {"id": rid, "object": "response", "status": "completed",
            "output": [said("assistant", answer)]}


def call(n: int) -> dict[str, str]:
    return {"program_id": "acme/p1", "call_id": f"c{n}", "thread_id": "main"}


async def test_a_conversation_continued_turn_by_turn(redis_target: RedisTarget) -> None:
    client = redis_target.client()
    stored = StoredResponses(client, ttl_s=60, timeout_s=1.0)
    r1, r2, r3 = new_id(), new_id(), new_id()
    try:
        assert await stored.put("acme", r1, [said("user", "Hi")], response(r1, "Hello"),
                                call(1), [])
        one = await stored.continued("acme", r1)
        assert (one.items, one.call, one.chain) == (
            [said("user", "Hi"), said("assistant", "Hello")], call(1), [r1])
        await stored.put("acme", r2, [said("user", "Name?")], response(r2, "Ada"), call(2),
                         one.chain)
        await stored.put("acme", r3, [said("user", "Bye")], response(r3, "Bye"), call(3),
                         [r1, r2])
        await client.pexpire(keys.stored_response("acme", r1), 5_000)
        three = await stored.continued("acme", r3)
        assert three.items == [said("user", "Hi"), said("assistant", "Hello"),
                               said("user", "Name?"), said("assistant", "Ada"),
                               said("user", "Bye"), said("assistant", "Bye")]
        assert (three.call, three.chain) == (call(3), [r1, r2, r3])
        assert await client.pttl(keys.stored_response("acme", r1)) > 5_000  # renewed
        record = await stored.get("acme", r2)  # one turn, as stored
        assert record == {"input": [said("user", "Name?")], "response": response(r2, "Ada"),
                          "call": call(2), "chain": [r1]}
        assert await stored.get("globex", r2) is None  # never across tenants
        with pytest.raises(BrokenChain, match="not found"):
            await stored.continued("globex", r3)
        assert not await stored.delete("globex", r2)
        assert await stored.delete("acme", r2)  # the middle of the chain
        assert await stored.get("acme", r2) is None and not await stored.delete("acme", r2)
        with pytest.raises(BrokenChain) as broken:
            await stored.continued("acme", r3)
        assert broken.value.missing == r2 and "no longer stored" in str(broken.value)
        assert (await stored.continued("acme", r1)).chain == [r1]  # before it: whole
        # read for listing: every turn's record, the deleted one as None, no TTL renewed
        await client.pexpire(keys.stored_response("acme", r1), 4_000)
        last, earlier = await stored.history("acme", r3) or (None, [])
        assert last == {"input": [said("user", "Bye")], "response": response(r3, "Bye"),
                        "call": call(3), "chain": [r1, r2]}
        assert [(rid, rec and rec["input"]) for rid, rec in earlier] == [
            (r1, [said("user", "Hi")]), (r2, None)]
        assert await client.pttl(keys.stored_response("acme", r1)) <= 4_000
        assert await stored.history("acme", r1) == (await stored.get("acme", r1), [])
        assert await stored.history("globex", r3) is None
    finally:
        await client.aclose()


@pytest.mark.parametrize("bad", ["resp_1", "resp_" + "0" * 31, "RESP_" + "0" * 32,
                                 "resp_" + "0" * 32 + "}", "{t:globex}:resp_" + "0" * 32, ""])
async def test_an_id_the_gateway_never_makes_names_no_key(bad: str) -> None:
    """Checked before any key is built: no Redis is asked (this client has none)."""
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    stored = StoredResponses(client, ttl_s=60, timeout_s=0.2)
    try:
        assert await stored.get("acme", bad) is None
        assert not await stored.delete("acme", bad)
        with pytest.raises(BrokenChain):
            await stored.continued("acme", bad)
    finally:
        await client.aclose()


async def test_without_redis_a_read_fails_clearly_and_a_write_is_skipped() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    stored = StoredResponses(client, ttl_s=60, timeout_s=0.2)
    rid = new_id()
    try:
        for read in (stored.get, stored.continued, stored.delete, stored.history):
            with pytest.raises(ResponsesUnavailable):
                await read("acme", rid)
        assert not await stored.put("acme", rid, [], response(rid, "x"), call(1), [])
    finally:
        await client.aclose()


async def test_unreadable_records_read_as_missing(redis_target: RedisTarget) -> None:
    """A corrupted record or one of another shape (an older format) is not found, not a
    crash; a conversation of MAX_CHAIN turns is not continued; any text round-trips."""
    client = redis_target.client()
    stored = StoredResponses(client, ttl_s=60, timeout_s=1.0)
    bad, old, long_, odd = new_id(), new_id(), new_id(), new_id()
    try:
        await client.set(keys.stored_response("acme", bad), b"{corrupt")
        await client.set(keys.stored_response("acme", old), json.dumps(
            {"context": [], "response": response(old, "x"), "call": call(1)}))
        for rid in (bad, old):
            assert await stored.get("acme", rid) is None
            with pytest.raises(BrokenChain):
                await stored.continued("acme", rid)
        chain = [new_id() for _ in range(MAX_CHAIN - 1)]
        await stored.put("acme", long_, [said("user", "x")], response(long_, "y"), call(1),
                         chain)
        with pytest.raises(ChainTooLong):
            await stored.continued("acme", long_)
        text = "lone \ud800 surrogate, \u00e9, \U0001f600"
        assert await stored.put("acme", odd, [said("user", text)], response(odd, text),
                                call(1), [])
        assert (await stored.continued("acme", odd)).items == [said("user", text),
                                                                said("assistant", text)]
    finally:
        await client.aclose()


async def test_a_tenants_stored_responses_are_bounded(redis_target: RedisTarget) -> None:
    """Past its bound a tenant's responses nearest their expiry are removed first (a review
    filled Redis with one tenant's responses, and every tenant with a quota was refused);
    another tenant's are untouched; one larger than the bound is not stored; a delete, an
    expiry and a renewal keep the count right."""
    client = redis_target.client()
    acme, globex = f"acme-{uuid.uuid4().hex[:8]}", f"globex-{uuid.uuid4().hex[:8]}"
    one = len(json.dumps({"input": [said("user", "x" * 1000)], "response": response(
        new_id(), "y"), "call": call(1), "chain": []}, separators=(",", ":"))) + RECORD_OVERHEAD
    stored = StoredResponses(client, ttl_s=60, timeout_s=1.0, max_bytes=3 * one)

    async def put(tenant: str, rid: str, size: int = 1000) -> bool:
        return await stored.put(tenant, rid, [said("user", "x" * size)], response(rid, "y"),
                                call(1), [])
    try:
        other = new_id()
        assert await put(globex, other)
        ids = [new_id() for _ in range(5)]
        for rid in ids:
            assert await put(acme, rid)
        assert [await stored.get(acme, rid) is not None for rid in ids] == [False, False,
                                                                           True, True, True]
        assert await stored.kept_bytes(acme) == 3 * one
        assert await stored.get(globex, other) is not None  # another tenant's: kept
        big = new_id()
        assert not await put(acme, big, size=4 * one)  # larger than the whole bound
        assert await stored.get(acme, big) is None and await stored.kept_bytes(acme) == 3 * one
        # a continued response is renewed in the index too: the next removal spares it
        index = keys.stored_responses_index(acme)
        soon = int(time.time() * 1e6) + 5_000_000  # (µs)
        await client.zadd(index, {ids[2]: soon, ids[3]: soon})  # as if both expired soonest
        await stored.continued(acme, ids[2])
        assert await client.zscore(index, ids[2]) > soon
        assert await put(acme, new_id())
        assert await stored.get(acme, ids[3]) is None and await stored.get(acme, ids[2])
        # deleted: its bytes back; expired: forgotten at the next store
        assert await stored.delete(acme, ids[2]) and await stored.kept_bytes(acme) == 2 * one
        await client.delete(keys.stored_response(acme, ids[4]))
        await client.zadd(index, {ids[4]: 1})
        assert await put(acme, new_id())
        assert await stored.kept_bytes(acme) == 2 * one
        assert await client.zscore(index, ids[4]) is None
    finally:
        await client.aclose()
