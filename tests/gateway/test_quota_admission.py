"""The gateway's quota check: refusals carry when to retry; Redis out of reach serves
the call unmetered (serving never stops for Redis)."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis

from cache.quotas import Quotas
from cache.redis_server import free_port
from cache.tenancy import Tenancy, TenantLimits
from gateway.call_items import CallFailed
from gateway.execution import CallExecutor


def _executor(redis_url: str, limits: TenantLimits) -> tuple[CallExecutor, aioredis.Redis]:
    client = aioredis.from_url(redis_url, socket_connect_timeout=0.2, socket_timeout=0.2)
    tenancy = Tenancy(tenants=frozenset({"t"}), limits={"t": limits})
    return CallExecutor(None, None, tenancy=lambda: tenancy, quotas=Quotas(client),  # type: ignore[arg-type]
                        quota_timeout_s=0.5), client


async def test_over_quota_is_resource_exhausted_with_retry_after(redis_url: str) -> None:
    executor, client = _executor(redis_url, TenantLimits(rpm=1))
    tenant = f"t-{free_port()}"
    try:
        await executor._admit(tenant, TenantLimits(rpm=1), 10)
        with pytest.raises(CallFailed) as refused:
            await executor._admit(tenant, TenantLimits(rpm=1), 10)
    finally:
        await client.aclose()
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.retry_after_s is not None and 0 < refused.value.retry_after_s <= 60


async def test_redis_down_serves_unmetered() -> None:
    executor, client = _executor(f"redis://127.0.0.1:{free_port()}", TenantLimits(rpm=1))
    try:
        for _ in range(3):
            await executor._admit("t", TenantLimits(rpm=1), 10)  # no refusal, no exception
    finally:
        await client.aclose()
