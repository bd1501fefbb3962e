"""Conversations of OpenAI's Conversations API (/v1/conversations: what the OpenAI Agents
SDK's OpenAIConversationsSession keeps its history in): a conversation object and its items
in order, per tenant, in Redis.

Each conversation is three keys under its tenant's hash tag (cache/keys.py): the object,
the list of its item ids and a hash of its items, so that a page of items is read without
the rest and an item is deleted by id. Adding items is one script: the conversation must
exist and stay within MAX_ITEMS. Every read and write renews the TTL of all three. An id of
another tenant, or not of the gateway's form, reads as missing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from cache import keys
from cache.redis_client import AsyncClient, KeptInRedis, text

CONVERSATION_ID = re.compile(r"conv_[0-9a-f]{32}")
MAX_ITEMS = 4096  # items one conversation may hold: every read of its ids stays bounded

# KEYS: object, ids, items; ARGV: ttl ms, max items, then (id, JSON item) pairs.
# -1: no such conversation; -2: it would hold more than the max; else its item count.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('LLEN', KEYS[2]) + (#ARGV - 2) / 2 > tonumber(ARGV[2]) then return -2 end
for i = 3, #ARGV, 2 do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[1]) end
return redis.call('LLEN', KEYS[2])
"""
# KEYS: object, ids, items; ARGV: ttl ms. The object and every item id, TTLs renewed.
_IDS = """
local object = redis.call('GET', KEYS[1])
if not object then return false end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[1]) end
return {object, redis.call('LRANGE', KEYS[2], 0, -1)}
"""
# KEYS: object, ids, items; ARGV: item id. -1: no such conversation; 0: no such item.
_DELETE_ITEM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('LREM', KEYS[2], 1, ARGV[1])
return 1
"""


class ConversationsUnavailable(Exception):
    """Redis could not be read or written."""


class TooManyItems(Exception):
    """Adding the items would take the conversation past MAX_ITEMS."""


# an item id's prefix by the item's type (as OpenAI's: msg_..., fc_...)
ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def new_item_id(kind: str) -> str:
    return f"{ITEM_PREFIX.get(kind, 'item')}_{uuid.uuid4().hex}"


class ConversationStore(KeptInRedis):
    unavailable = ConversationsUnavailable

    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float) -> None:
        super().__init__(client, ttl_s, timeout_s)
        self._add = client.register_script(_ADD)
        self._ids = client.register_script(_IDS)
        self._delete_item = client.register_script(_DELETE_ITEM)

    @staticmethod
    def _keys(tenant: str, conversation_id: str) -> list[str]:
        return [keys.stored_conversation(tenant, conversation_id),
                keys.conversation_item_ids(tenant, conversation_id),
                keys.conversation_items(tenant, conversation_id)]

    async def create(self, tenant: str, metadata: dict[str, str],
                     items: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A new conversation (its object) holding `items` (given their ids)."""
        cid = f"conv_{uuid.uuid4().hex}"
        obj = {"id": cid, "object": "conversation", "created_at": int(time.time()),
               "metadata": metadata}
        name = keys.stored_conversation(tenant, cid)
        await self._do(self._redis.set(name, _dumps(obj), px=self._ttl_ms), name)
        added = await self.add(tenant, cid, items) if items else []
        return obj, added or []

    async def get(self, tenant: str, conversation_id: str) -> dict[str, Any] | None:
        got = await self.ids(tenant, conversation_id)
        return None if got is None else got[0]

    async def update(self, tenant: str, conversation_id: str,
                     metadata: dict[str, str]) -> dict[str, Any] | None:
        """Its metadata replaced; None when there is no such conversation."""
        obj = await self.get(tenant, conversation_id)
        if obj is None:
            return None
        obj["metadata"] = metadata
        name = keys.stored_conversation(tenant, conversation_id)
        await self._do(self._redis.set(name, _dumps(obj), px=self._ttl_ms, xx=True), name)
        return obj

    async def delete(self, tenant: str, conversation_id: str) -> bool:
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return False
        names = self._keys(tenant, conversation_id)
        return bool(await self._do(self._redis.delete(*names), names[0]))

    async def add(self, tenant: str, conversation_id: str,
                  items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """`items` appended, each given an id; None when there is no such conversation;
        TooManyItems past MAX_ITEMS."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        added = [{"id": new_item_id(item["type"]), **item} for item in items]
        args: list[Any] = [self._ttl_ms, MAX_ITEMS]
        for item in added:
            args += [item["id"], _dumps(item)]
        names = self._keys(tenant, conversation_id)
        n = await self._do(self._add(keys=names, args=args), names[0])
        if n == -1:
            return None
        if n == -2:
            raise TooManyItems(f"a conversation holds at most {MAX_ITEMS} items")
        return added

    async def ids(self, tenant: str, conversation_id: str
                  ) -> tuple[dict[str, Any], list[str]] | None:
        """The conversation's object and its item ids, oldest first (TTLs renewed)."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        names = self._keys(tenant, conversation_id)
        got = await self._do(self._ids(keys=names, args=[self._ttl_ms]), names[0])
        if not got:
            return None
        raw, ids = got
        return json.loads(raw), [text(i) for i in ids]

    async def items(self, tenant: str, conversation_id: str,
                    item_ids: list[str]) -> list[dict[str, Any] | None]:
        """The items of these ids (None for one deleted meanwhile)."""
        if not item_ids:
            return []
        name = keys.conversation_items(tenant, conversation_id)
        raw = await self._do(self._redis.hmget(name, item_ids), name)
        return [None if r is None else json.loads(r) for r in raw]

    async def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool | None:
        """Whether the item was there (now gone); None when the conversation is not."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        names = self._keys(tenant, conversation_id)
        n = await self._do(self._delete_item(keys=names, args=[item_id]), names[0])
        return None if n == -1 else bool(n)



def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # ASCII: lone surrogates too
