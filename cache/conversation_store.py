"""Conversations of OpenAI's Conversations API (/v1/conversations: what the OpenAI Agents
SDK's OpenAIConversationsSession keeps its history in): a conversation object and its items
in order, per tenant, in Redis.

Each conversation is three keys under its tenant's hash tag (cache/keys.py): the object,
the list of its item ids and a hash of its items, so that a page of items is read without
the rest and an item is deleted by id. Adding items is one script: the conversation must
exist and stay within MAX_ITEMS and within its `max_bytes` of stored item JSON (kept in the
items hash under BYTES_FIELD). Every read and write renews the TTL of all three. An id of
another tenant, or not of the gateway's form, reads as missing.

Storage is bounded per tenant (security review 2026-12-05 F1): a tenant keeps at most
`max_conversations` conversations (a set of its ids under its hash tag; ids whose object has
expired are pruned when the set is full), each of at most `max_bytes`, and all of them
together at most `max_tenant_bytes` of item JSON (a hash of each conversation's bytes and
their sum beside the set; the expired are pruned when the sum would pass it): their product
alone let one tenant keep about 1.3 GB (tenant review 2026-12-08 F2), so one tenant cannot
fill the shared Redis through this API however far over its rate quota it is.
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
MAX_CONVERSATIONS = 1000  # default: conversations one tenant may keep
MAX_BYTES = 1 << 20  # default: bytes of item JSON one conversation may hold
MAX_TENANT_BYTES = 64 << 20  # default: bytes of item JSON one tenant's conversations may hold
BYTES_FIELD = "_bytes"  # the items hash's field counting them (no item id has this form)

# Forgets a conversation's bytes in its tenant's sums (KEYS[#KEYS]: that hash).
_FORGET = """
local function forget(cid)
  local had = tonumber(redis.call('HGET', KEYS[#KEYS], cid) or '0')
  redis.call('HDEL', KEYS[#KEYS], cid)
  if had > 0 then redis.call('HINCRBY', KEYS[#KEYS], '_total', 0 - had) end
end
local function prune(ids, prefix)
  for _, cid in ipairs(redis.call('SMEMBERS', ids)) do
    if redis.call('EXISTS', prefix .. cid) == 0 then
      redis.call('SREM', ids, cid)
      forget(cid)
    end
  end
end
"""
# KEYS: object, ids, items, the tenant's set of ids, its bytes; ARGV: ttl ms, max items, max
# bytes, bytes added, the tenant's max bytes (0: none), the conversation's id, the key prefix
# of a conversation object, then (id, JSON item) pairs. -1: no such conversation; -2: it
# would hold more than the max items; -3: more than the max bytes; -4: the tenant's
# conversations more than theirs; else its item count.
_ADD = _FORGET + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('LLEN', KEYS[2]) + (#ARGV - 7) / 2 > tonumber(ARGV[2]) then return -2 end
local bytes = tonumber(redis.call('HGET', KEYS[3], '_bytes') or '0')
local added = tonumber(ARGV[4])
if bytes + added > tonumber(ARGV[3]) then return -3 end
local bound = tonumber(ARGV[5])
if bound > 0 and tonumber(redis.call('HGET', KEYS[5], '_total') or '0') + added > bound then
  prune(KEYS[4], ARGV[7])
  if tonumber(redis.call('HGET', KEYS[5], '_total') or '0') + added > bound then return -4 end
end
for i = 8, #ARGV, 2 do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', KEYS[3], '_bytes', added)
redis.call('HINCRBY', KEYS[5], ARGV[6], added)
redis.call('HINCRBY', KEYS[5], '_total', added)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
for i = 4, 5 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return redis.call('LLEN', KEYS[2])
"""
# KEYS: object, the tenant's set of ids, its bytes; ARGV: ttl ms, max conversations, id,
# JSON object, the key prefix of a conversation object (for pruning the expired). 0: the
# tenant is at its max; 1: created.
_CREATE = _FORGET + """
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  prune(KEYS[2], ARGV[5])
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
"""
# KEYS: object, ids, items, the tenant's set of ids, its bytes; ARGV: ttl ms. The object
# and every item id, TTLs renewed, the tenant's two keys' at least as far (a tenant reading
# its conversations alone kept them while its sum expired: diff review 2026-12-08).
_IDS = """
local object = redis.call('GET', KEYS[1])
if not object then return false end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
for i = 4, 5 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return {object, redis.call('LRANGE', KEYS[2], 0, -1)}
"""
# KEYS: object, ids, items, the tenant's bytes; ARGV: item id, the conversation's id. -1:
# no such conversation; 0: no such item. The item's bytes go back to the conversation's
# count and its tenant's.
_DELETE_ITEM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local size = redis.call('HSTRLEN', KEYS[3], ARGV[1])
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[3], '_bytes', -size)
if tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0') >= size then
  redis.call('HINCRBY', KEYS[4], ARGV[2], -size)
  redis.call('HINCRBY', KEYS[4], '_total', -size)
end
redis.call('LREM', KEYS[2], 1, ARGV[1])
return 1
"""
# KEYS: object, ids, items, the tenant's set of ids, its bytes; ARGV: the conversation's id.
# Whether it was there (now gone, and its bytes from its tenant's sum).
_DELETE = _FORGET + """
redis.call('SREM', KEYS[4], ARGV[1])
forget(ARGV[1])
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
"""


class ConversationsUnavailable(Exception):
    """Redis could not be read or written."""


class TooManyItems(Exception):
    """Adding the items would take the conversation past MAX_ITEMS (or its max bytes)."""


class TooManyConversations(Exception):
    """The tenant already keeps its max conversations, or its max bytes of items."""


# an item id's prefix by the item's type (as OpenAI's: msg_..., fc_...)
ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def new_item_id(kind: str) -> str:
    return f"{ITEM_PREFIX.get(kind, 'item')}_{uuid.uuid4().hex}"


class ConversationStore(KeptInRedis):
    unavailable = ConversationsUnavailable

    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float, *,
                 max_conversations: int = MAX_CONVERSATIONS, max_bytes: int = MAX_BYTES,
                 max_tenant_bytes: int = MAX_TENANT_BYTES) -> None:
        super().__init__(client, ttl_s, timeout_s)
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._max_tenant_bytes = max_tenant_bytes  # 0: no bound
        self._create = client.register_script(_CREATE)
        self._add = client.register_script(_ADD)
        self._ids = client.register_script(_IDS)
        self._delete_item = client.register_script(_DELETE_ITEM)
        self._delete = client.register_script(_DELETE)

    @staticmethod
    def _keys(tenant: str, conversation_id: str) -> list[str]:
        return [keys.stored_conversation(tenant, conversation_id),
                keys.conversation_item_ids(tenant, conversation_id),
                keys.conversation_items(tenant, conversation_id)]

    async def create(self, tenant: str, metadata: dict[str, str],
                     items: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A new conversation (its object) holding `items` (given their ids);
        TooManyConversations when the tenant keeps its max already, TooManyItems when the
        items exceed one conversation's bytes."""
        if sum(len(_dumps(item)) for item in items) > self._max_bytes:
            raise TooManyItems(f"a conversation holds at most {self._max_bytes} bytes of items")
        cid = f"conv_{uuid.uuid4().hex}"
        obj = {"id": cid, "object": "conversation", "created_at": int(time.time()),
               "metadata": metadata}
        name = keys.stored_conversation(tenant, cid)
        prefix = keys.stored_conversation(tenant, "")
        created = await self._do(self._create(
            keys=[name, keys.tenant_conversations(tenant), keys.tenant_conversation_bytes(tenant)],
            args=[self._ttl_ms, self._max_conversations, cid, _dumps(obj), prefix]), name)
        if not created:
            raise TooManyConversations(
                f"tenant {tenant!r} keeps {self._max_conversations} conversations, the most it "
                "may: delete some, or wait for idle ones to expire")
        try:
            added = await self.add(tenant, cid, items) if items else []
        except (TooManyItems, TooManyConversations):
            # refused, so nobody learns its id: not left holding a place (diff review)
            await self.delete(tenant, cid)
            raise
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
        names = [*self._keys(tenant, conversation_id), keys.tenant_conversations(tenant),
                 keys.tenant_conversation_bytes(tenant)]
        return bool(await self._do(self._delete(keys=names, args=[conversation_id]), names[0]))

    async def add(self, tenant: str, conversation_id: str,
                  items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """`items` appended, each given an id; None when there is no such conversation;
        TooManyItems past MAX_ITEMS."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        added = [{"id": new_item_id(item["type"]), **item} for item in items]
        for item in added:  # an id of the client's is kept, but never the count's field
            if item["id"] == BYTES_FIELD:
                item["id"] = new_item_id(item["type"])
        pairs: list[Any] = []
        for item in added:
            pairs += [item["id"], _dumps(item)]
        size = sum(len(p) for p in pairs[1::2])
        args: list[Any] = [self._ttl_ms, MAX_ITEMS, self._max_bytes, size,
                           self._max_tenant_bytes, conversation_id,
                           keys.stored_conversation(tenant, ""), *pairs]
        names = [*self._keys(tenant, conversation_id), keys.tenant_conversations(tenant),
                 keys.tenant_conversation_bytes(tenant)]
        n = await self._do(self._add(keys=names, args=args), names[0])
        if n == -1:
            return None
        if n == -2:
            raise TooManyItems(f"a conversation holds at most {MAX_ITEMS} items")
        if n == -3:
            raise TooManyItems(f"a conversation holds at most {self._max_bytes} bytes of items")
        if n == -4:
            raise TooManyConversations(
                f"tenant {tenant!r}'s conversations hold {self._max_tenant_bytes} bytes of items, "
                "the most they may: delete some, or wait for idle ones to expire")
        return added

    async def ids(self, tenant: str, conversation_id: str
                  ) -> tuple[dict[str, Any], list[str]] | None:
        """The conversation's object and its item ids, oldest first (TTLs renewed)."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        names = [*self._keys(tenant, conversation_id), keys.tenant_conversations(tenant),
                 keys.tenant_conversation_bytes(tenant)]
        got = await self._do(self._ids(keys=names, args=[self._ttl_ms]), names[0])
        if not got:
            return None
        raw, ids = got
        return json.loads(raw), [text(i) for i in ids]

    async def items(self, tenant: str, conversation_id: str,
                    item_ids: list[str]) -> list[dict[str, Any] | None]:
        """The items of these ids (None for one deleted meanwhile, or no item's id)."""
        valid = [i for i in item_ids if i != BYTES_FIELD]  # (the count is no item)
        if not valid:
            return [None] * len(item_ids)
        name = keys.conversation_items(tenant, conversation_id)
        raw = await self._do(self._redis.hmget(name, valid), name)
        found = {i: json.loads(r) for i, r in zip(valid, raw, strict=True) if r is not None}
        return [found.get(i) for i in item_ids]

    async def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool | None:
        """Whether the item was there (now gone; its bytes no longer count); None when the
        conversation is not."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        names = self._keys(tenant, conversation_id)
        if item_id == BYTES_FIELD:  # the count is no item
            return None if not await self._do(self._redis.exists(names[0]), names[0]) else False
        n = await self._do(self._delete_item(
            keys=[*names, keys.tenant_conversation_bytes(tenant)],
            args=[item_id, conversation_id]), names[0])
        return None if n == -1 else bool(n)



def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # ASCII: lone surrogates too
