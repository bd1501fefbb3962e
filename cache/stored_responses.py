"""Stored responses of the Responses API (POST /v1/responses with `store`, OpenAI's
default): what each response was given and what it answered, so that a later request can
continue it by `previous_response_id` without sending the conversation again, and
GET/DELETE /v1/responses/<id> can read or remove it.

A record is the response object, its context (every input item it was given, earlier
turns' included, so that continuing it is one read, not a walk along the chain; the next
turn's context is this one's plus its output) and the call that answered it (a
continuation is that call's child, in its program, whatever the instructions). Each
lives under its tenant's hash tag (cache/keys.py) with a fixed TTL: a tenant can never name
another's, and an id of another tenant reads as missing. Response ids are checked against
the gateway's own form before any key is built from them.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import redis.asyncio as aioredis
import structlog

from cache import keys
from cache.redis_client import AsyncClient

log = structlog.get_logger(__name__)

RESPONSE_ID = re.compile(r"resp_[0-9a-f]{32}")  # the ids the gateway hands out


class ResponsesUnavailable(Exception):
    """Redis could not be read: a stored response can be neither found nor ruled out."""


class StoredResponses:
    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float) -> None:
        self._redis = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._timeout = 2 * timeout_s  # each operation, whole (a cluster client retries)

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        """The tenant's stored record of `response_id`, or None (unknown, expired, deleted,
        another tenant's, or not an id this gateway makes)."""
        if not RESPONSE_ID.fullmatch(response_id):
            return None
        raw = await self._do(self._redis.get(keys.stored_response(tenant, response_id)))
        return None if raw is None else json.loads(raw)

    async def put(self, tenant: str, response_id: str, context: list[Any],
                  response: dict[str, Any], call: dict[str, str]) -> bool:
        """Stores a finished response and the call that answered it ({program_id, call_id,
        thread_id}: where a continuation runs); False (logged) when Redis failed: the
        answer still reaches its client, which cannot continue it by id."""
        value = json.dumps({"context": context, "response": response, "call": call},
                           separators=(",", ":"), ensure_ascii=False)
        try:
            await self._do(self._redis.set(keys.stored_response(tenant, response_id), value,
                                           px=self._ttl_ms))
        except ResponsesUnavailable as exc:
            log.warning("stored responses unavailable: response not stored", error=str(exc))
            return False
        return True

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Whether the tenant had such a response (now gone)."""
        if not RESPONSE_ID.fullmatch(response_id):
            return False
        return bool(await self._do(self._redis.delete(keys.stored_response(tenant, response_id))))

    async def _do(self, op: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await op
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            raise ResponsesUnavailable(str(exc) or type(exc).__name__) from exc
