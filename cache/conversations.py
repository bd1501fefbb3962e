"""Programs without headers: recognizing that a request continues an earlier call.

An agent framework that knows nothing of Ostinato resends the whole conversation on every
call: the history, the previous answer (with its tool calls), then the new turns. When a
request's messages start with an earlier request's messages plus that request's answer
(same tenant, model and tools), it is the next call of the same program, a child of that
call; otherwise it starts a new program. Two requests extending the same call are parallel
branches: the first stays on the call's thread, later ones get threads of their own.

The digests are pure (`conversation_digest`, `candidate_prefixes`); the index lives in
Redis with an idle TTL, so it works across gateway replicas. Redis trouble only costs the
attribution (a new program), never the call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from cache import keys
from cache.outage import outage_of
from cache.redis_client import AsyncClient, operation_bound, within
from ostinato.v1 import common_pb2

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Continuation:
    program_id: str
    parent_call_id: str
    thread_id: str


def _arguments(text: str) -> object:
    """Frameworks re-serialize the arguments they were given: compare them as JSON."""
    try:
        return json.loads(text or "{}")
    except (json.JSONDecodeError, RecursionError):  # (too deep for Python's json)
        return text


def _message(m: common_pb2.Message) -> list[object]:
    return [m.role, m.content, m.tool_call_id,
            [[c.id, c.name, _arguments(c.arguments)] for c in m.tool_calls]]


def conversation_digest(tenant: str, call: common_pb2.CallSpec,
                        messages: Sequence[common_pb2.Message]) -> str:
    shaping = {"model": call.model, "tools": sorted(t.name for t in call.tools)}
    blob = json.dumps({"v": 1, "tenant": tenant, "shaping": shaping,
                       "messages": [_message(m) for m in messages]},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def candidate_prefixes(tenant: str, call: common_pb2.CallSpec) -> list[str]:
    """Digests of each prefix of the request's messages that ends with an assistant turn,
    longest first: the earlier calls this request may continue."""
    ends = [i + 1 for i, m in enumerate(call.messages) if m.role == "assistant"]
    return [conversation_digest(tenant, call, call.messages[:end]) for end in reversed(ends)]


def answered(call: common_pb2.CallSpec, result: common_pb2.CallResult) -> list[common_pb2.Message]:
    """The request's messages followed by the answer, as the client will send them back."""
    answer = common_pb2.Message(role="assistant", content=result.text,
                                tool_calls=result.tool_calls)
    return [*call.messages, answer]


class IndexUnavailable(Exception):
    """Redis did not answer the conversation index in time (or failed under a second ago)."""


class ConversationIndex:
    def __init__(self, client: AsyncClient, idle_ttl_s: float, timeout_s: float) -> None:
        self._redis = client
        self._ttl_ms = max(1, int(idle_ttl_s * 1000))
        self._timeout = operation_bound(timeout_s)  # each lookup or record, whole

    async def find(self, tenant: str, call: common_pb2.CallSpec) -> Continuation | None:
        """The call this request continues (the longest matching history), or None."""
        digests = candidate_prefixes(tenant, call)
        if not digests:
            return None
        try:
            # (the tenant's keys share a slot)
            return await within(self._find(tenant, digests), self._timeout, IndexUnavailable,
                                outage_of(self._redis), key=keys.conversation(tenant, digests[0]))
        except (IndexUnavailable, ValueError, KeyError) as exc:
            # (each time at debug: an outage is logged once, at its start: cache/outage.py)
            log.debug("conversation index unavailable: the request starts a new program",
                      error=str(exc) or type(exc).__name__)
        return None

    async def _find(self, tenant: str, digests: list[str]) -> Continuation | None:
        found = await self._redis.mget([keys.conversation(tenant, d) for d in digests])
        for raw in found:
            if raw is None:
                continue
            parent = json.loads(raw)
            return await self._branch(tenant, Continuation(
                parent["program_id"], parent["call_id"], parent["thread_id"]))
        return None

    async def branch(self, tenant: str, parent: Continuation,
                     ttl_s: float | None = None) -> Continuation:
        """A request known to extend `parent` (a call and its thread; e.g. a stored response
        it continues by id): the first such request stays on the call's thread, later ones
        get threads of their own, counted for `ttl_s` (as long as what it extends can be
        continued; default: the index's idle TTL). Redis trouble: the call's thread."""
        try:
            kids = keys.conversation_children(tenant, parent.program_id, parent.parent_call_id)
            return await within(self._branch(tenant, parent, ttl_s), self._timeout,
                                IndexUnavailable, outage_of(self._redis), key=kids)
        except IndexUnavailable as exc:
            log.debug("conversation index unavailable: the call stays on its parent's "
                      "thread", error=str(exc))
        return parent

    async def _branch(self, tenant: str, parent: Continuation,
                      ttl_s: float | None = None) -> Continuation:
        kids = keys.conversation_children(tenant, parent.program_id, parent.parent_call_id)
        ttl_ms = self._ttl_ms if ttl_s is None else max(self._ttl_ms, int(ttl_s * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(kids)
            pipe.pexpire(kids, ttl_ms)
            n, _ = await pipe.execute()
        thread = parent.thread_id if n == 1 else f"{parent.thread_id}.{n}"
        return Continuation(parent.program_id, parent.parent_call_id, thread)

    async def record(self, tenant: str, call: common_pb2.CallSpec, result: common_pb2.CallResult,
                     program_id: str) -> None:
        """Remembers that `call`'s messages plus its answer belong to `program_id`."""
        if not call.messages:
            return
        digest = conversation_digest(tenant, call, answered(call, result))
        value = json.dumps({"program_id": program_id, "call_id": call.call_id,
                            "thread_id": call.thread_id})
        name = keys.conversation(tenant, digest)
        try:
            await within(self._redis.set(name, value, px=self._ttl_ms), self._timeout,
                         IndexUnavailable, outage_of(self._redis), key=name)
        except IndexUnavailable as exc:
            log.debug("conversation index unavailable: not recorded", error=str(exc))
