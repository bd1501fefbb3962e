"""Conversations of the Conversations API (cache/conversation_store.py) in a real Redis and a
Redis Cluster: created with items, items added in order and read by id, one deleted, the
whole deleted; per tenant; bounded; ids not the gateway's name no key; Redis down is an
error, never a silent miss."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cache import conversation_store, keys
from cache.conversation_store import (
    ConversationStore,
    ConversationsUnavailable,
    TooManyItems,
)
from tests.ports import closed_port
from tests.redis_cluster import RedisTarget


def said(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": text}


async def test_a_conversation_and_its_items(redis_target: RedisTarget) -> None:
    client = redis_target.client()
    store = ConversationStore(client, ttl_s=60, timeout_s=1.0)
    try:
        obj, first = await store.create("acme", {"k": "v"}, [said("user", "Hi")])
        cid = obj["id"]
        assert obj["object"] == "conversation" and obj["metadata"] == {"k": "v"}
        assert [i["id"][:4] for i in first] == ["msg_"]
        more = await store.add("acme", cid, [said("assistant", "Hello"), {
            "type": "function_call_output", "call_id": "c1", "output": "rain"}]) or []
        assert [i["id"][:4] for i in more] == ["msg_", "fco_"]
        got = await store.ids("acme", cid)
        assert got is not None and got[0] == obj
        ids = got[1]
        assert ids == [i["id"] for i in (*first, *more)]  # in order
        assert await store.items("acme", cid, ids[1:]) == more
        assert await client.pttl(keys.conversation_items("acme", cid)) > 0  # all three kept
        assert await store.ids("globex", cid) is None  # never across tenants
        assert await store.add("globex", cid, [said("user", "x")]) is None
        assert await store.delete_item("globex", cid, ids[0]) is None
        assert await store.delete_item("acme", cid, ids[1]) is True
        assert await store.delete_item("acme", cid, ids[1]) is False
        assert (await store.ids("acme", cid) or ({}, []))[1] == [ids[0], ids[2]]
        assert await store.items("acme", cid, [ids[1]]) == [None]
        assert (await store.update("acme", cid, {"x": "y"}) or {})["metadata"] == {"x": "y"}
        assert await store.update("globex", cid, {}) is None
        assert not await store.delete("globex", cid)
        assert await store.delete("acme", cid)
        assert await store.get("acme", cid) is None and not await store.delete("acme", cid)
        assert await client.exists(*ConversationStore._keys("acme", cid)) == 0
    finally:
        await client.aclose()


async def test_a_conversation_holds_at_most_max_items(redis_target: RedisTarget,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversation_store, "MAX_ITEMS", 3)
    client = redis_target.client()
    store = ConversationStore(client, ttl_s=60, timeout_s=1.0)
    try:
        obj, _ = await store.create("acme", {}, [said("user", "1"), said("user", "2")])
        with pytest.raises(TooManyItems):
            await store.add("acme", obj["id"], [said("user", "3"), said("user", "4")])
        assert len((await store.ids("acme", obj["id"]) or ({}, []))[1]) == 2  # none added
        assert await store.add("acme", obj["id"], [said("user", "3")])
    finally:
        await client.aclose()


@pytest.mark.parametrize("bad", ["conv_1", "conv_" + "0" * 31, "CONV_" + "0" * 32,
                                 "conv_" + "0" * 32 + "}", ""])
async def test_an_id_the_gateway_never_makes_names_no_key(bad: str) -> None:
    """Checked before any key is built: no Redis is asked (this client has none)."""
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    store = ConversationStore(client, ttl_s=60, timeout_s=0.2)
    try:
        assert await store.ids("acme", bad) is None
        assert await store.add("acme", bad, [said("user", "x")]) is None
        assert await store.delete_item("acme", bad, "msg_1") is None
        assert not await store.delete("acme", bad)
    finally:
        await client.aclose()


async def test_without_redis_every_operation_fails_clearly() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    store = ConversationStore(client, ttl_s=60, timeout_s=0.2)
    cid = f"conv_{uuid.uuid4().hex}"
    try:
        with pytest.raises(ConversationsUnavailable):
            await store.create("acme", {}, [])
        for op in (store.ids("acme", cid), store.add("acme", cid, [said("user", "x")]),
                   store.items("acme", cid, ["msg_1"]), store.delete("acme", cid),
                   store.delete_item("acme", cid, "msg_1")):
            with pytest.raises(ConversationsUnavailable):
                await op
    finally:
        await client.aclose()


async def test_a_tenant_keeps_a_bounded_number_and_size_of_conversations(
        redis_target: RedisTarget) -> None:
    """Security review 2026-12-05 F1: per tenant, at most max_conversations (a deleted one
    frees its place; another tenant has its own), each of at most max_bytes of items."""
    client = redis_target.client()
    store = ConversationStore(client, ttl_s=60, timeout_s=1.0, max_conversations=2,
                              max_bytes=200)
    tenant, other = f"cap-{uuid.uuid4().hex[:8]}", f"cap-{uuid.uuid4().hex[:8]}"
    try:
        first, _ = await store.create(tenant, {}, [])
        await store.create(tenant, {}, [said("user", "x")])
        with pytest.raises(conversation_store.TooManyConversations):
            await store.create(tenant, {}, [])
        await store.create(other, {}, [])
        assert await store.delete(tenant, first["id"])
        third, _ = await store.create(tenant, {}, [said("user", "a" * 50)])
        with pytest.raises(TooManyItems, match="200 bytes"):
            await store.add(tenant, third["id"], [said("user", "b" * 150)])
        with pytest.raises(TooManyItems, match="200 bytes"):
            await store.create(other, {}, [said("user", "c" * 300)])
        got = await store.ids(tenant, third["id"])
        assert got is not None and len(got[1]) == 1  # the refused item was not added
        # one expired (its keys gone) is pruned when the tenant is at its max
        await client.delete(*store._keys(tenant, third["id"]))
        await store.create(tenant, {}, [])
        with pytest.raises(conversation_store.TooManyConversations):
            await store.create(tenant, {}, [])
    finally:
        await client.aclose()


async def test_a_deleted_item_gives_its_bytes_back_and_the_count_is_no_item(
        redis_target: RedisTarget) -> None:
    """Security review 2026-12-05 F1's remainder: deleting items frees room under max_bytes;
    the hash field that counts the bytes can be neither read, nor deleted, nor overwritten
    as an item (deleting it would have reset the count)."""
    client = redis_target.client()
    store = ConversationStore(client, ttl_s=60, timeout_s=1.0, max_bytes=400)
    tenant = f"bytes-{uuid.uuid4().hex[:8]}"
    try:
        obj, [first] = await store.create(tenant, {}, [said("user", "a" * 150)])
        cid = obj["id"]
        with pytest.raises(TooManyItems, match="400 bytes"):
            await store.add(tenant, cid, [said("user", "b" * 150)])
        assert await store.items(tenant, cid, [conversation_store.BYTES_FIELD]) == [None]
        assert await store.delete_item(tenant, cid, conversation_store.BYTES_FIELD) is False
        with pytest.raises(TooManyItems, match="400 bytes"):  # the count is still there
            await store.add(tenant, cid, [said("user", "b" * 150)])
        named = {**said("user", "c"), "id": conversation_store.BYTES_FIELD}
        [renamed] = await store.add(tenant, cid, [named]) or [{}]
        assert renamed["id"].startswith("msg_")
        assert await store.delete_item(tenant, cid, first["id"]) is True
        [second] = await store.add(tenant, cid, [said("user", "b" * 150)]) or [{}]  # room again
        got = await store.ids(tenant, cid)
        assert got is not None and got[1] == [renamed["id"], second["id"]]
    finally:
        await client.aclose()


async def test_a_tenants_conversations_hold_a_bounded_number_of_bytes(
        redis_target: RedisTarget) -> None:
    """Tenant review 2026-12-08 F2: max_conversations x max_bytes let one tenant keep about
    1.3 GB. All its conversations together hold at most max_tenant_bytes (a 429); deleting
    items or conversations, and conversations expiring, give their bytes back; another
    tenant has its own."""
    client = redis_target.client()
    store = ConversationStore(client, ttl_s=60, timeout_s=1.0, max_bytes=1000,
                              max_tenant_bytes=1000)
    tenant, other = f"tb-{uuid.uuid4().hex[:8]}", f"tb-{uuid.uuid4().hex[:8]}"
    size = len(json.dumps({"id": "msg_" + "0" * 32, **said("user", "a" * 400)},
                          separators=(",", ":")))
    try:
        a, [item] = await store.create(tenant, {}, [said("user", "a" * 400)])
        b, _ = await store.create(tenant, {}, [said("user", "a" * 400)])
        with pytest.raises(conversation_store.TooManyConversations, match="1000 bytes"):
            await store.add(tenant, a["id"], [said("user", "a" * 400)])
        ids = keys.tenant_conversations(tenant)
        with pytest.raises(conversation_store.TooManyConversations, match="1000 bytes"):
            await store.create(tenant, {}, [said("user", "a" * 400)])
        assert await client.scard(ids) == 2  # the refused one is not left holding a place
        await store.create(other, {}, [said("user", "a" * 400)])  # another tenant: its own
        total = keys.tenant_conversation_bytes(tenant)
        assert int(await client.hget(total, "_total")) == 2 * size
        assert await store.delete_item(tenant, a["id"], item["id"])  # an item's bytes back
        await store.add(tenant, a["id"], [said("user", "a" * 400)])
        assert await store.delete(tenant, b["id"])  # a conversation's bytes back
        assert int(await client.hget(total, "_total")) == size
        c, _ = await store.create(tenant, {}, [said("user", "a" * 400)])
        await client.delete(*store._keys(tenant, a["id"]))  # expired: pruned when needed
        await store.add(tenant, c["id"], [said("user", "a" * 400)])
        assert int(await client.hget(total, "_total")) == 2 * size
        assert await client.hget(total, a["id"]) is None
        # a read renews the tenant's keys with the conversation's: its sum never expires first
        await client.pexpire(total, 1_000)
        await client.pexpire(ids, 1_000)
        assert await store.ids(tenant, c["id"]) is not None
        assert await client.pttl(total) > 50_000 and await client.pttl(ids) > 50_000
    finally:
        await client.aclose()
