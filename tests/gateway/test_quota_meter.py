"""The gateway's quota meter: refusals carry when to retry; Redis out of reach serves the
call unmetered (serving never stops for Redis); a refused call's prompt tokens come back
to a tenant with an rpm only."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from cache.quotas import Quotas
from cache.tenancy import TenantLimits
from gateway.call_items import CallFailed
from gateway.quota_meter import UNNAMED_RESERVE_TOKENS, QuotaMeter
from tests.ports import closed_port


def _meter(redis_url: str) -> tuple[QuotaMeter, aioredis.Redis]:
    # bounds for a busy machine's stalls (a closed port refuses at once)
    client = aioredis.from_url(redis_url, socket_connect_timeout=5.0, socket_timeout=5.0)

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        coro.close()  # charges are not what these tests look at

    return QuotaMeter(Quotas(client), 5.0, spawn), client


async def test_over_quota_is_resource_exhausted_with_retry_after(redis_url: str) -> None:
    meter, client = _meter(redis_url)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    try:
        assert await meter.admit(tenant, TenantLimits(rpm=1), 10)
        with pytest.raises(CallFailed) as refused:
            await meter.admit(tenant, TenantLimits(rpm=1), 10)
    finally:
        await client.aclose()
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.retry_after_s is not None and 0 < refused.value.retry_after_s <= 60


async def test_redis_down_serves_unmetered() -> None:
    meter, client = _meter(f"redis://127.0.0.1:{closed_port()}")
    try:
        for _ in range(3):  # no refusal, no exception, and not metered
            assert not await meter.admit("t", TenantLimits(rpm=1), 10)
        await meter.refund("t", TenantLimits(rpm=1, tpm=100), 10)  # nothing raised either
        # a prompt over the whole tpm is refused for good, Redis or not (no retry time)
        with pytest.raises(CallFailed) as never:
            await meter.admit("t", TenantLimits(tpm=100), 101)
    finally:
        await client.aclose()
    assert never.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert never.value.retry_after_s is None and "can never be admitted" in never.value.message


@pytest.mark.parametrize(("limits", "second"), [
    (TenantLimits(rpm=10, tpm=100), True),  # the refused call's 60 tokens came back
    (TenantLimits(tpm=100), False),  # a tpm alone: they stay taken
])
async def test_a_refund_is_for_tenants_with_an_rpm(redis_url: str, limits: TenantLimits,
                                                  second: bool) -> None:
    meter, client = _meter(redis_url)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    try:
        assert await meter.admit(tenant, limits, 60)
        await meter.refund(tenant, limits, 60)
        if second:
            assert await meter.admit(tenant, limits, 60)
        else:
            with pytest.raises(CallFailed):
                await meter.admit(tenant, limits, 60)
    finally:
        await client.aclose()


async def test_a_charge_redis_does_not_take_is_counted_unmetered() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.2,
                               socket_timeout=0.2)
    charges: list[Coroutine[Any, Any, None]] = []
    meter = QuotaMeter(Quotas(client), 0.5, charges.append)
    try:
        meter.charge("t", TenantLimits(tpm=1000), 25)
        meter.charge("t", TenantLimits(rpm=5), 25)  # no tpm: nothing to charge
        meter.charge("t", TenantLimits(tpm=1000), 25, metered=False)  # counted when admitted
        assert len(charges) == 2
        for charge in charges:
            await charge
    finally:
        await client.aclose()
    assert meter.unmetered == 1


class _FullRedisQuotas(Quotas):
    """Quotas whose Redis answers every write with an OOM error (at maxmemory, noeviction)."""

    async def admit(self, *args: Any, **kwargs: Any) -> Any:
        raise redis_errors.ResponseError(
            "OOM command not allowed when used memory > 'maxmemory'. script: b3e9, on @user_script:5.")

    async def charge(self, *args: Any, **kwargs: Any) -> Any:
        return await self.admit()


async def test_a_redis_refusing_writes_fails_closed_without_its_text(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Security review 2026-12-05 F1: an OOM reply is not an outage, so quotas are not
    lifted: the call is refused UNAVAILABLE, its message without Redis's, and a warning is
    logged (with it)."""
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}")
    spawned: list[Coroutine[Any, Any, None]] = []
    meter = QuotaMeter(_FullRedisQuotas(client), 0.5, spawned.append)
    try:
        for _ in range(2):  # every time: the outage view does not skip a Redis that answers
            with pytest.raises(CallFailed) as refused:
                await meter.admit("t", TenantLimits(rpm=5), 10)
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE
            assert "maxmemory" not in refused.value.message
            assert "script" not in refused.value.message
        assert not await meter.admit("t", TenantLimits(), 10)  # no quota: nothing to meter
        meter.charge("t", TenantLimits(tpm=100), 5)
        await spawned[0]
    finally:
        await client.aclose()
    assert meter.unmetered == 1  # the charge's
    logged = capsys.readouterr()
    assert "quota store refused the write" in logged.out + logged.err


@pytest.mark.parametrize(("limits", "prompt", "max_new", "named", "reserved"), [
    (TenantLimits(rpm=5), 10, 2000, True, 0),  # no tpm: none
    (TenantLimits(tpm=1000), 10, 200, True, 200),
    (TenantLimits(tpm=1000), 10, 2000, True, 990),  # what the tpm leaves beside the prompt
    # a call naming no max tokens (its default: what the window leaves, up to 16,384)
    # reserves at most UNNAMED_RESERVE_TOKENS: a tpm of 20,000 runs many at once
    (TenantLimits(tpm=20_000), 100, 16_384, False, UNNAMED_RESERVE_TOKENS),
    (TenantLimits(tpm=20_000), 100, 300, False, 300),
    (TenantLimits(tpm=1000), 10, 16_384, False, 990),
])
def test_a_reservation_is_max_new_tokens_cut_to_what_the_tpm_leaves(
        limits: TenantLimits, prompt: int, max_new: int, named: bool, reserved: int) -> None:
    assert QuotaMeter.reservation(limits, prompt, max_new, named) == reserved


async def test_concurrent_output_is_bounded_by_the_tpm(redis_url: str) -> None:
    """Security review 2026-12-05 F2: max_new_tokens is reserved at admission, so calls
    running at once cannot together be allowed more than the tpm; what a call did not use
    comes back when it ends, and more than it reserved is charged."""
    client = aioredis.from_url(redis_url)
    spawned: list[Coroutine[Any, Any, None]] = []
    meter = QuotaMeter(Quotas(client), 0.5, spawned.append)
    tenant, limits = f"t-{uuid.uuid4().hex[:8]}", TenantLimits(tpm=1000)
    try:
        assert await meter.admit(tenant, limits, 10, 480)
        assert await meter.admit(tenant, limits, 10, 480)
        with pytest.raises(CallFailed) as refused:  # a third would be past the tpm
            await meter.admit(tenant, limits, 10, 480)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        meter.charge(tenant, limits, 80, metered=True, reserved=480)  # 400 come back
        await spawned.pop()
        assert await meter.admit(tenant, limits, 10, 380)
        await meter.refund(tenant, limits, 10, reserved=380)  # refused as invalid: 380 back
        assert await meter.admit(tenant, limits, 10, 370)
        meter.charge(tenant, limits, 600, metered=True, reserved=370)  # 230 more taken
        await spawned.pop()
        with pytest.raises(CallFailed):
            await meter.admit(tenant, limits, 1, 0)
    finally:
        await client.aclose()


class _BusyQuotas(Quotas):
    """Quotas whose client has no free connection (a burst past its pool)."""

    async def admit(self, *args: Any, **kwargs: Any) -> Any:
        raise redis_errors.MaxConnectionsError("no free connection to Redis in 5.0 s")


async def test_a_client_out_of_connections_fails_closed() -> None:
    """Cancellation review 2026-12-08 F1: a burst past the gateway's Redis connections was
    served unmetered (a tenant with rpm 5 got 40 of 40 calls): it is refused UNAVAILABLE,
    to retry in a second, as a Redis refusing writes is."""
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}")
    meter = QuotaMeter(_BusyQuotas(client), 0.5, lambda coro: coro.close())
    try:
        with pytest.raises(CallFailed) as refused:
            await meter.admit("t", TenantLimits(rpm=5), 10)
    finally:
        await client.aclose()
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.retry_after_s == 1.0 and meter.unmetered == 0
