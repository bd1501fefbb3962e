"""The gateway's quota meter: refusals carry when to retry; Redis out of reach serves the
call unmetered (serving never stops for Redis); a refused call's prompt tokens come back
to a tenant with an rpm only."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from cache.quotas import Quotas
from cache.redis_server import free_port
from cache.tenancy import TenantLimits
from gateway.call_items import CallFailed
from gateway.quota_meter import QuotaMeter


def _meter(redis_url: str) -> tuple[QuotaMeter, aioredis.Redis]:
    client = aioredis.from_url(redis_url, socket_connect_timeout=0.2, socket_timeout=0.2)

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        coro.close()  # charges are not what these tests look at

    return QuotaMeter(Quotas(client), 0.5, spawn), client


async def test_over_quota_is_resource_exhausted_with_retry_after(redis_url: str) -> None:
    meter, client = _meter(redis_url)
    tenant = f"t-{free_port()}"
    try:
        assert await meter.admit(tenant, TenantLimits(rpm=1), 10)
        with pytest.raises(CallFailed) as refused:
            await meter.admit(tenant, TenantLimits(rpm=1), 10)
    finally:
        await client.aclose()
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.retry_after_s is not None and 0 < refused.value.retry_after_s <= 60


async def test_redis_down_serves_unmetered() -> None:
    meter, client = _meter(f"redis://127.0.0.1:{free_port()}")
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
    tenant = f"t-{free_port()}"
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
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2,
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
