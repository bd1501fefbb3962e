"""A call's quotas on the gateway's call path (gateway/execution.py): its call and prompt
tokens taken at admission, its completion tokens charged once known, and a refused call's
prompt tokens given back. Redis out of reach: the call is served unmetered (counted), and
while Redis stays down the quota script is not even tried (cache/outage.py), so that no call
waits out a timeout for it more than once a second. The buckets and the one Lua script that
keeps them: cache/quotas.py.

A Redis that answers but refuses the quota script (an OOM `ResponseError` under `maxmemory`,
or any other error reply) is not an outage: serving unmetered then would lift every tenant's
rpm/tpm for as long as Redis stays full (security review 2026-12-05 F1). A tenant with a
quota is then refused, UNAVAILABLE (a 503 whose text does not carry Redis's), and a warning
is logged."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import redis
import structlog

from cache.keys import quota_calls
from cache.quotas import Quotas, never_fits
from cache.redis_client import operation_bound, within
from cache.tenancy import TenantLimits
from gateway.call_items import CallFailed

log = structlog.get_logger("gateway.quotas")

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class QuotasUnavailable(Exception):
    """Redis did not answer the quota script in time (or failed under a second ago)."""


def refused(exc: BaseException) -> bool:
    """Whether Redis answered the quota operation with an error (OOM ...), or this gateway
    had no free connection to it (a burst: cache/redis_client.py MAX_CONNECTIONS), not that
    it is out of reach: either fails closed (served unmetered, a burst was a quota bypass)."""
    return isinstance(exc.__cause__, (redis.exceptions.ResponseError,
                                      redis.exceptions.MaxConnectionsError))


REFUSED = ("quotas cannot be metered now (the quota store refused the write, or is busy); "
           "retry later")
# A call naming no max tokens may write to the window's end; it reserves at most this many
# (what it writes past them is charged at its end): reserving its whole default (16,384) let
# a tenant with a tpm of 20,000 run one such call at a time (diff review 2026-12-07).
UNNAMED_RESERVE_TOKENS = 1024


class QuotaMeter:
    def __init__(self, quotas: Quotas | None, timeout_s: float, spawn: Spawn) -> None:
        """`quotas`: the tenants' buckets in Redis (None: not enforced); `spawn`: runs what
        is not awaited on the call's path."""
        self._quotas = quotas
        self._timeout_s = operation_bound(timeout_s)  # (timeout_s: the client's socket one)
        self._spawn = spawn
        self.unmetered = 0  # calls served unmetered, or not charged their completion tokens,
        # because Redis did not answer

    @staticmethod
    def reservation(limits: TenantLimits, prompt_tokens: int, max_new_tokens: int,
                    named: bool = True) -> int:
        """The completion tokens a call reserves at admission (security review 2026-12-05
        F2: a tpm must bound concurrent output, not only be charged after it): its
        max_new_tokens (at most UNNAMED_RESERVE_TOKENS when the caller `named` none), cut
        to what a minute's tpm leaves beside its prompt, so that a call allowed as many
        tokens as the whole tpm is still admitted, then alone. 0 without a tpm."""
        if not limits.tpm:
            return 0
        most = max_new_tokens if named else min(max_new_tokens, UNNAMED_RESERVE_TOKENS)
        return max(0, min(most, limits.tpm - prompt_tokens))

    async def admit(self, tenant: str, limits: TenantLimits, prompt_tokens: int,
                    reserved: int = 0) -> bool:
        """The tenant's quotas take this call, its prompt tokens and `reserved` completion
        tokens (True; `settle` charges or gives back the difference once the completion is
        known), or it is refused (RESOURCE_EXHAUSTED, with when to retry). No quota, or
        Redis out of reach: served unmetered (False)."""
        if self._quotas is None or not (limits.rpm or limits.tpm):
            return False
        if never_fits(limits, prompt_tokens):  # refused whether Redis answers or not
            raise self._never(tenant, limits, prompt_tokens)
        quotas = self._quotas
        try:
            decision = await within(quotas.admit(tenant, limits, prompt_tokens + reserved),
                                    self._timeout_s, QuotasUnavailable, quotas.outage,
                                    key=quota_calls(tenant))
        except QuotasUnavailable as exc:
            if refused(exc):  # Redis is there but refuses: fail closed
                log.warning("quota store refused the write: call refused", tenant=tenant,
                            error=str(exc))
                raise CallFailed(grpc.StatusCode.UNAVAILABLE, REFUSED, retry_after_s=1.0) from None
            # counted (ostinato_quota_unmetered_calls_total); an outage is logged once, at
            # its start (cache/outage.py)
            self.unmetered += 1
            log.debug("quotas unavailable: call not metered", tenant=tenant, error=str(exc))
            return False
        if decision.admitted:
            return True
        if decision.retry_after_s <= 0:  # no wait makes it fit: never retryable as it is
            raise self._never(tenant, limits, prompt_tokens)
        raise CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"tenant {tenant!r} is over its quota ({limits.rpm or 'unlimited'} calls, "
                         f"{limits.tpm or 'unlimited'} tokens per minute); retry after "
                         f"{decision.retry_after_s:.1f} s", retry_after_s=decision.retry_after_s)

    @staticmethod
    def _never(tenant: str, limits: TenantLimits, prompt_tokens: int) -> CallFailed:
        return CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"the prompt's {prompt_tokens} tokens exceed the {limits.tpm} "
                          f"tokens per minute of tenant {tenant!r}: it can never be "
                          "admitted (shorten it)", final=True)

    def charge(self, tenant: str, limits: TenantLimits, completion_tokens: int,
               metered: bool = True, reserved: int = 0) -> None:
        """Completion tokens go on the tenant's token bucket once known (not awaited), less
        the `reserved` ones its admission took already; fewer than reserved give the rest
        back. One that Redis does not take counts the call unmetered, unless its admission
        was (`metered` False: counted then, and nothing was reserved)."""
        quotas = self._quotas
        if quotas is None or not limits.tpm:
            return
        if metered and reserved:
            if completion_tokens < reserved:
                self._spawn(self._give_back(tenant, limits, reserved - completion_tokens))
                return
            completion_tokens -= reserved
        if completion_tokens <= 0:
            return

        async def charge() -> None:
            try:
                await within(quotas.charge(tenant, limits, completion_tokens), self._timeout_s,
                             QuotasUnavailable, quotas.outage, key=quota_calls(tenant))
            except QuotasUnavailable as exc:
                self.unmetered += metered  # served, its completion tokens not taken
                if refused(exc):
                    log.warning("quota store refused the write: completion tokens not charged",
                                tenant=tenant, error=str(exc))

        self._spawn(charge())

    async def refund(self, tenant: str, limits: TenantLimits, prompt_tokens: int,
                     reserved: int = 0) -> None:
        """A call admitted (metered) and then refused before it ran (by the planner, for
        any reason, a load shed included; or at once by its engine, as invalid): its
        reserved completion tokens, and its prompt tokens, go back to
        the tenant's tokens per minute before the refusal is answered, so the next request
        sees them. The request itself still counts against rpm, and only a tenant with an
        rpm gets its prompt tokens back: for one with a tpm alone, they are the only bound on
        how fast it may send requests that the mesh refuses."""
        await self._give_back(tenant, limits, reserved + (prompt_tokens if limits.rpm else 0))

    def refund_later(self, tenant: str, limits: TenantLimits, prompt_tokens: int,
                     reserved: int = 0) -> None:
        """`refund`, in the background (not awaited): for a call whose caller is gone."""
        self._spawn(self.refund(tenant, limits, prompt_tokens, reserved))

    async def _give_back(self, tenant: str, limits: TenantLimits, tokens: int) -> None:
        quotas = self._quotas
        if quotas is None or tokens <= 0:
            return
        with contextlib.suppress(QuotasUnavailable):
            await within(quotas.refund(tenant, limits, tokens), self._timeout_s,
                         QuotasUnavailable, quotas.outage, key=quota_calls(tenant))
