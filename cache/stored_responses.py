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

# A chain's records, each one's TTL renewed (ARGV[1] ms): one round trip, the keys declared
# (one slot: the tenant's hash tag), so it runs on a Redis Cluster too.
_READ_AND_RENEW = """
local out = redis.call('MGET', unpack(KEYS))
for i, key in ipairs(KEYS) do
  if out[i] then redis.call('PEXPIRE', key, ARGV[1]) end
end
return out
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

    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float) -> None:
        super().__init__(client, ttl_s, timeout_s)
        self._renew = client.register_script(_READ_AND_RENEW)

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
        names = [keys.stored_response(tenant, rid) for rid in (*chain, response_id)]
        replies = await self._do(self._renew(keys=names, args=[self._ttl_ms]), names[0])
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
        Redis failed: the answer still reaches its client, which cannot continue it by id."""
        value = json.dumps({"input": input_items, "response": response, "call": call,
                            "chain": chain}, separators=(",", ":"))  # ASCII: lone surrogates too
        try:
            name = keys.stored_response(tenant, response_id)
            await self._do(self._redis.set(name, value, px=self._ttl_ms), name)
        except ResponsesUnavailable as exc:
            # (each time at debug: an outage is logged once, at its start: cache/outage.py)
            log.debug("stored responses unavailable: response not stored", error=str(exc))
            return False
        return True

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Whether the tenant had such a response (now gone)."""
        if not RESPONSE_ID.fullmatch(response_id):
            return False
        name = keys.stored_response(tenant, response_id)
        return bool(await self._do(self._redis.delete(name), name))

