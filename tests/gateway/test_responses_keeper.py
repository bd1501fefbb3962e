"""A response's turn and its conversation (gateway/responses_api.py `_Keeper`), on a real
Redis: the turn is added before the answer is given; a turn that cannot be added (Redis
gone) fails the response instead of leaving the conversation without it; a conversation its
owner deleted meanwhile only loses the turn."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis

from cache.conversation_store import ConversationStore
from gateway.core import GatewayError, Placement
from gateway.responses_api import _Keeper, _Prior
from ostinato.v1 import common_pb2
from tests.ports import closed_port

BODY = {"model": "m", "input": "What is the weather?", "store": False}
ANSWER = {"id": "resp_1", "status": "completed", "output": [{
    "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]}]}
CID = "conv_" + "0" * 32
PLACED = Placement(program_id="p", call=common_pb2.CallSpec(call_id="c"), attributed=False)


async def _keep(store: ConversationStore, cid: str) -> None:
    await _Keeper(None, "acme", BODY, _Prior(), (store, cid), []).keep(dict(ANSWER), PLACED)


async def test_the_turn_is_added(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    store = ConversationStore(client, ttl_s=60, timeout_s=1.0)
    try:
        obj, _ = await store.create("acme", {}, [])
        await _keep(store, obj["id"])
        got = await store.ids("acme", obj["id"])
        assert got is not None
        items = await store.items("acme", obj["id"], got[1])
        assert [i["role"] for i in items if i is not None] == ["user", "assistant"]
        await store.delete("acme", obj["id"])
        await _keep(store, obj["id"])  # deleted meanwhile: the answer stands, no error
    finally:
        await client.aclose()


async def test_a_turn_redis_cannot_take_fails_the_response() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    store = ConversationStore(client, ttl_s=60, timeout_s=0.2)
    try:
        with pytest.raises(GatewayError) as exc:
            await _keep(store, CID)
    finally:
        await client.aclose()
    assert exc.value.code is grpc.StatusCode.UNAVAILABLE and exc.value.param == "conversation"
    assert exc.value.message.startswith(f"the answer could not be added to conversation {CID!r}")
