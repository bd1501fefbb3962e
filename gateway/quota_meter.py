"""A call's quotas on the gateway's call path (gateway/execution.py): its call and prompt
tokens taken at admission, its completion tokens charged once known, and a refused call's
prompt tokens given back. Redis out of reach: the call is served unmetered. The buckets and
the one Lua script that keeps them: cache/quotas.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import structlog
from redis.exceptions import RedisError

from cache.quotas import Quotas
from cache.tenancy import TenantLimits
from gateway.call_items import CallFailed

log = structlog.get_logger("gateway.quotas")

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class QuotaMeter:
    def __init__(self, quotas: Quotas | None, timeout_s: float, spawn: Spawn) -> None:
        """`quotas`: the tenants' buckets in Redis (None: not enforced); `spawn`: runs what
        is not awaited on the call's path."""
        self._quotas = quotas
        self._timeout_s = timeout_s
        self._spawn = spawn

    async def admit(self, tenant: str, limits: TenantLimits, prompt_tokens: int) -> bool:
        """The tenant's quotas take this call and its prompt tokens (True), or it is refused
        (RESOURCE_EXHAUSTED, with when to retry). No quota, or Redis out of reach: served
        unmetered (False)."""
        if self._quotas is None or not (limits.rpm or limits.tpm):
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                decision = await self._quotas.admit(tenant, limits, prompt_tokens)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("quotas unavailable: call not metered", tenant=tenant, error=repr(exc))
            return False
        if decision.admitted:
            return True
        if decision.retry_after_s <= 0:
            raise CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"the prompt's {prompt_tokens} tokens exceed tenant {tenant!r}'s "
                             f"{limits.tpm} tokens per minute")
        raise CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"tenant {tenant!r} is over its quota ({limits.rpm or 'unlimited'} calls, "
                         f"{limits.tpm or 'unlimited'} tokens per minute); retry after "
                         f"{decision.retry_after_s:.1f} s", retry_after_s=decision.retry_after_s)

    def charge(self, tenant: str, limits: TenantLimits, completion_tokens: int) -> None:
        """Completion tokens go on the tenant's token bucket once known (not awaited)."""
        quotas = self._quotas
        if quotas is None or not limits.tpm or completion_tokens <= 0:
            return

        async def charge() -> None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self._timeout_s):
                    await quotas.charge(tenant, limits, completion_tokens)

        self._spawn(charge())

    async def refund(self, tenant: str, limits: TenantLimits, prompt_tokens: int) -> None:
        """A call admitted (metered) and then refused as invalid, by the engine or the
        planner, never ran: its prompt tokens go back to the tenant's tokens per minute
        before the refusal is answered, so the next request sees them. The request itself
        still counts against rpm, and only a tenant with an rpm gets tokens back: for one
        with a tpm alone, the tokens are the only bound on how fast it may send requests
        that the mesh refuses."""
        if self._quotas is None or not limits.rpm:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                await self._quotas.refund(tenant, limits, prompt_tokens)
