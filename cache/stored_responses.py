"""Stored responses of the Responses API (POST /v1/responses with `store`, OpenAI's
default): what each response was given and what it answered, so that a later request can
continue it by `previous_response_id` without sending the conversation again, and
GET/DELETE /v1/responses/<id> can read or remove it.

A record holds one turn: the input items it was given (this request's only), the response
object, the call that answered it (a continuation is that call's child, in its program,
whatever the instructions) and its chain, the ids of the responses it continues, oldest
first. Continuing one reads it, then its chain with one script (every key under the
tenant's hash tag: one slot) that also renews the whole chain's TTL: two round trips, and a
conversation in use never loses its middle. Its text is stored once (each record's id list
still grows with the chain: at most MAX_CHAIN ids). What is stored is what the prompt used
(gateway/responses_format.py `input_items`), so its size is bounded by the gateway's
prompt limits. A chain with a response deleted or expired cannot be continued
(previous_response_not_found).

Each key lives under its tenant's hash tag (cache/keys.py): a tenant can never name
another's, and an id of another tenant reads as missing. Response ids are checked against
the gateway's own form before any key is built from them.

What a tenant keeps is bounded (`max_bytes`, gateway.max_stored_response_bytes_per_tenant):
an index of its responses by expiry and their sizes (each record's JSON and RECORD_OVERHEAD)
is kept beside them, and storing one past the bound first removes the tenant's responses
nearest their expiry, so that one tenant cannot fill the shared Redis (a review filled 39 MB
in 1.7 s with answers from the exact cache, and every tenant with a quota was then refused).
A response larger than the whole bound is not stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import structlog

from cache import keys
from cache.redis_client import AsyncClient, KeptInRedis

log = structlog.get_logger(__name__)

RESPONSE_ID = re.compile(r"resp_[0-9a-f]{32}")  # the ids the gateway hands out
# Turns a stored conversation may have (as gateway.max_messages' default: each turn adds a
# message); continuing a longer one is refused, keeping every read bounded.
MAX_CHAIN = 1024

# Bytes counted for a record beyond its JSON: its key, its index and size entries.
RECORD_OVERHEAD = 256
_TOTAL = "_total"  # the sizes hash's field of their sum (no response id has this form)

# A chain's records, each one's TTL renewed (ARGV[1] ms), and their expiry in the tenant's
# index (the last two keys: index, sizes): one round trip, the keys declared (one slot: the
# tenant's hash tag), so it runs on a Redis Cluster too. ARGV[2..]: the records' ids.
_STAMP = """
local function stamp(add_ms)
  local t = redis.call('TIME')
  local us = tonumber(t[2]) + (add_ms % 1000) * 1000
  local s = tonumber(t[1]) + math.floor(add_ms / 1000) + math.floor(us / 1000000)
  return string.format('%d%06d', s, us % 1000000)
end
"""  # the time now + add_ms in microseconds, as digits (an index's score: Lua would write
# such a number with 14 digits and lose the microseconds that order the tenant's stores)
_READ_AND_RENEW = _STAMP + """
local records = {unpack(KEYS, 1, #KEYS - 2)}
local out = redis.call('MGET', unpack(records))
local expiry = stamp(tonumber(ARGV[1]))
for i, key in ipairs(records) do
  if out[i] then
    redis.call('PEXPIRE', key, ARGV[1])
    redis.call('ZADD', KEYS[#KEYS - 1], 'XX', expiry, ARGV[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[#KEYS - 1], ARGV[1])
redis.call('PEXPIRE', KEYS[#KEYS], ARGV[1])
return out
"""
# KEYS: record, index, sizes; ARGV: ttl ms, max bytes (0: no bound), id, JSON, the key
# prefix of the tenant's records (for those it removes). 1: stored; 0: larger than the bound.
# At most 64 expired entries are forgotten a store (one store after a burst's TTL blocked
# Redis 0.26 s for 50,000: diff review 2026-12-08); the bound's loop pops the rest in turn.
_PUT = _STAMP + """
local ttl, bound = tonumber(ARGV[1]), tonumber(ARGV[2])
local size = string.len(ARGV[4]) + """ + str(RECORD_OVERHEAD) + """
if bound > 0 and size > bound then return 0 end
local now = stamp(0)
local function forget(rid)
  local had = tonumber(redis.call('HGET', KEYS[3], rid) or '0')
  if had > 0 then
    redis.call('HDEL', KEYS[3], rid)
    redis.call('HINCRBY', KEYS[3], '_total', 0 - had)
  end
end
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 64)) do
  forget(rid)
  redis.call('DEL', ARGV[5] .. rid)
  redis.call('ZREM', KEYS[2], rid)
end
forget(ARGV[3])
if bound > 0 then
  while tonumber(redis.call('HGET', KEYS[3], '_total') or '0') + size > bound do
    local oldest = redis.call('ZPOPMIN', KEYS[2])
    if #oldest == 0 then break end
    forget(oldest[1])
    redis.call('DEL', ARGV[5] .. oldest[1])
  end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
redis.call('ZADD', KEYS[2], stamp(ttl), ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], size)
redis.call('HINCRBY', KEYS[3], '_total', size)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
"""
# KEYS: record, index, sizes; ARGV: id. Whether there was such a record.
_DELETE = """
local had = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if had > 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[3], '_total', 0 - had)
end
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""


class ResponsesUnavailable(Exception):
    """Redis could not be read: a stored response can be neither found nor ruled out."""


class BrokenChain(Exception):
    """A response continued by id is missing (never stored, expired, deleted, another
    tenant's, unreadable), or one it continues is."""

    def __init__(self, response_id: str, missing: str) -> None:
        super().__init__(f"Previous response with id {response_id!r} not found." if
                         missing == response_id else
                         f"Previous response with id {response_id!r} continues {missing!r}, "
                         "which is no longer stored (expired or deleted).")
        self.response_id, self.missing = response_id, missing


class ChainTooLong(Exception):
    """A conversation of MAX_CHAIN turns: not continued by id."""


def _record(raw: bytes | str | None, response_id: str) -> dict[str, Any] | None:
    """A stored record, or None when there is none or it cannot be read (a record of
    another shape, corrupted: logged, treated as missing)."""
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        if isinstance(record, dict) and isinstance(record.get("input"), list) and isinstance(
                record.get("chain"), list) and isinstance(record.get("call"), dict) and \
                isinstance(record.get("response"), dict) and isinstance(
                record["response"].get("output"), list):
            return record
    except (ValueError, UnicodeDecodeError):
        pass
    log.warning("stored response unreadable: treated as missing", response_id=response_id)
    return None


@dataclass(frozen=True)
class Continued:
    """What continuing a stored response starts from: every turn's input and output items
    in order, the call that answered it, and the new response's chain."""

    items: list[Any]
    call: dict[str, str]
    chain: list[str]


def turn_items(record: dict[str, Any]) -> list[Any]:
    """One stored turn as the next turn is given it: its input, then its output."""
    return [*record["input"], *record["response"]["output"]]


def _chain(record: dict[str, Any], response_id: str) -> list[str]:
    """The ids a record continues; ChainTooLong past MAX_CHAIN turns (or ids of another
    form: a record no gateway wrote)."""
    chain: list[str] = record["chain"]
    if len(chain) + 1 >= MAX_CHAIN or not all(
            isinstance(rid, str) and RESPONSE_ID.fullmatch(rid) for rid in chain):
        raise ChainTooLong(f"response {response_id!r} ends a conversation of "
                           f"{len(chain) + 1} turns: at most {MAX_CHAIN - 1} are continued "
                           "by id; send the conversation as input")
    return chain


class StoredResponses(KeptInRedis):
    unavailable = ResponsesUnavailable

    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float,
                 max_bytes: int = 0) -> None:
        super().__init__(client, ttl_s, timeout_s)
        self._max_bytes = max_bytes  # a tenant's stored responses, at most (0: no bound)
        self._renew = client.register_script(_READ_AND_RENEW)
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        """The tenant's stored record of `response_id`, or None (unknown, expired, deleted,
        another tenant's, or not an id this gateway makes)."""
        if not RESPONSE_ID.fullmatch(response_id):
            return None
        name = keys.stored_response(tenant, response_id)
        raw = await self._do(self._redis.get(name), name)
        return _record(raw, response_id)

    async def continued(self, tenant: str, response_id: str) -> Continued:
        """The whole conversation up to and including `response_id`, its chain's TTL
        renewed; BrokenChain when it or a response it continues is missing, ChainTooLong
        when it has MAX_CHAIN turns."""
        last = await self.get(tenant, response_id)
        if last is None:
            raise BrokenChain(response_id, response_id)
        chain = _chain(last, response_id)
        ids = [*chain, response_id]
        names = [keys.stored_response(tenant, rid) for rid in ids]
        replies = await self._do(self._renew(
            keys=[*names, *_index(tenant)], args=[self._ttl_ms, *ids]), names[0])
        items: list[Any] = []
        for rid, raw in zip(chain, replies[:-1], strict=True):
            record = _record(raw, rid)
            if record is None:
                raise BrokenChain(response_id, rid)
            items += turn_items(record)
        return Continued([*items, *turn_items(last)], last["call"], [*chain, response_id])

    async def history(self, tenant: str, response_id: str
                      ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any] | None]]] | None:
        """`response_id`'s record and those of the turns it continues, oldest first (None
        for one deleted or expired since), TTLs untouched; None when it is not stored."""
        last = await self.get(tenant, response_id)
        if last is None:
            return None
        chain = _chain(last, response_id)
        if not chain:
            return last, []
        names = [keys.stored_response(tenant, rid) for rid in chain]
        replies = await self._do(self._redis.mget(names), names[0])
        return last, [(rid, _record(raw, rid)) for rid, raw in zip(chain, replies, strict=True)]

    async def put(self, tenant: str, response_id: str, input_items: list[Any],
                  response: dict[str, Any], call: dict[str, str], chain: list[str]) -> bool:
        """Stores a finished turn: its own input items, the response, the call that answered
        it ({program_id, call_id, thread_id}) and the ids it continues. False (logged) when
        Redis failed, or it is larger than the tenant's whole bound: the answer still
        reaches its client, which cannot continue it by id. Past the bound the tenant's
        responses nearest their expiry are removed first (see the module's docstring)."""
        value = json.dumps({"input": input_items, "response": response, "call": call,
                            "chain": chain}, separators=(",", ":"))  # ASCII: lone surrogates too
        try:
            name = keys.stored_response(tenant, response_id)
            stored = await self._do(self._put(
                keys=[name, *_index(tenant)],
                args=[self._ttl_ms, self._max_bytes, response_id, value,
                      keys.stored_response(tenant, "")]), name)
        except ResponsesUnavailable as exc:
            # (each time at debug: an outage is logged once, at its start: cache/outage.py)
            log.debug("stored responses unavailable: response not stored", error=str(exc))
            return False
        if not stored:
            log.warning("response larger than its tenant's bound: not stored",
                        response_id=response_id, bytes=len(value) + RECORD_OVERHEAD,
                        bound=self._max_bytes)
        return bool(stored)

    async def kept_bytes(self, tenant: str) -> int:
        """The bytes the tenant's stored responses count against its bound."""
        name = keys.stored_responses_sizes(tenant)
        return int(await self._do(self._redis.hget(name, _TOTAL), name) or 0)

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Whether the tenant had such a response (now gone)."""
        if not RESPONSE_ID.fullmatch(response_id):
            return False
        name = keys.stored_response(tenant, response_id)
        return bool(await self._do(self._delete(keys=[name, *_index(tenant)],
                                                args=[response_id]), name))


def _index(tenant: str) -> list[str]:
    """The tenant's index of its stored responses by expiry, and their sizes."""
    return [keys.stored_responses_index(tenant), keys.stored_responses_sizes(tenant)]

