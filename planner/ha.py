"""Planner high availability, the Redis and gRPC side of planner/lease.py.

- `RedisLease`: the lease in Redis. Acquire: `SET lease id NX PX ttl` and `INCR epoch` in
  one script (the token comes with the lease, or neither); renew: compare-and-pexpire;
  release: compare-and-delete (a planner stopping hands over at once).
- `LeaseKeeper`: runs the state machine against Redis on the system clock, and says when
  this planner becomes active and when its term ends.
- `ActiveOnly`: a server interceptor that answers UNAVAILABLE to every Planner RPC unless
  the lease holds, both when the call arrives and when its answer is about to leave (a grant
  computed as the lease lapsed is not handed out).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog

from cache import keys
from cache.redis_client import FAILURES, AsyncClient
from ostinato.clock import Clock
from planner.lease import Lease, Role, Step

log = structlog.get_logger(__name__)

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    def __init__(self, client: AsyncClient, holder: str) -> None:
        self.holder = holder
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, ttl_ms: int) -> int | None:
        """The new token, or None when another planner holds the lease."""
        token = int(await self._acquire(keys=[keys.planner_lease(), keys.planner_epoch()],
                                        args=[self.holder, ttl_ms]))
        return token or None

    async def renew(self, ttl_ms: int) -> bool:
        return bool(await self._renew(keys=[keys.planner_lease()], args=[self.holder, ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[keys.planner_lease()], args=[self.holder])


class LeaseKeeper:
    def __init__(self, lease: Lease, redis_lease: RedisLease, clock: Clock,
                 timeout_s: float) -> None:
        self.lease = lease
        self._redis = redis_lease
        self._clock = clock
        self._timeout_s = timeout_s
        self.active = asyncio.Event()  # set when this planner takes the lease
        self.ended = asyncio.Event()  # set when its term is over
        self._wake = asyncio.Event()

    def holds(self) -> bool:
        return self.lease.holds(self._clock.now())

    def depose(self, reason: str) -> None:
        """Ends the term at once (a fenced write was refused)."""
        self.lease.depose(reason)
        self._wake.set()

    async def run(self) -> None:
        """Until the term is over (`ended`); a failure of its own ends the term too."""
        try:
            await self._run()
        except Exception as exc:
            log.exception("planner lease keeper failed")
            self.lease.depose(f"lease keeper failed: {exc!r}")
        self.ended.set()

    async def _run(self) -> None:
        timing = self.lease.timing
        while True:
            now = self._clock.now()
            due = self.lease.due(now)
            if due.step is Step.STOP:
                if self.active.is_set():
                    log.error("planner lease lost: no longer serving", reason=self.lease.reason)
                return
            if due.step is Step.WAIT:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, due.at - now))
                continue
            try:
                if due.step is Step.ACQUIRE:
                    token = await asyncio.wait_for(self._redis.acquire(timing.ttl_ms),
                                                   self._timeout_s)
                    if token is None:
                        self.lease.refused(now)
                    else:
                        self.lease.acquired(now, token)
                        log.info("planner lease acquired: active", token=token,
                                 holder=self._redis.holder)
                        self.active.set()
                elif await asyncio.wait_for(self._redis.renew(timing.ttl_ms), self._timeout_s):
                    self.lease.renewed(now)
                else:
                    self.lease.refused(now)
            except FAILURES as exc:
                if self.lease.role is Role.ACTIVE:
                    log.warning("planner lease: redis did not answer", error=repr(exc),
                                valid_for_s=round(self.lease.valid_until - self._clock.now(), 3))
                self.lease.failed(self._clock.now())

    async def release(self) -> None:
        """Hands the lease over (a planner stopping): the standby need not wait for the TTL."""
        was_active = self.lease.role is Role.ACTIVE
        self.depose("stopping")
        if was_active:
            try:
                await asyncio.wait_for(self._redis.release(), self._timeout_s)
            except FAILURES as exc:
                log.warning("planner lease not released: the standby waits for its TTL",
                            error=repr(exc))


class ActiveOnly(grpc.aio.ServerInterceptor):
    """Planner RPCs only while `holds()`; health and reflection always."""

    def __init__(self, service: str, holds: Callable[[], bool]) -> None:
        self._prefix = f"/{service}/"
        self._holds = holds

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        if not details.method.startswith(self._prefix):  # type: ignore[attr-defined]
            return await continuation(details)
        if not self._holds():
            return grpc.unary_unary_rpc_method_handler(self._refuse)
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def checked(request: object, context: Any) -> object:
            reply = await inner(request, context)
            if not self._holds():  # the lease lapsed while the call ran: its answer is void
                await self._refuse(request, context)
            return reply

        return grpc.unary_unary_rpc_method_handler(
            checked, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    @staticmethod
    async def _refuse(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            "this planner is not the active one (standby, or its lease lapsed)")
