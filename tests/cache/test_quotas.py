"""Rate and token quotas against a real Redis and a Redis Cluster (GCRA in one Lua script,
Redis's clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cache.quotas import Quotas
from cache.tenancy import TenantLimits
from tests.cache.conftest import tenant_name
from tests.redis_cluster import RedisTarget


@pytest.fixture
async def quotas(redis_target: RedisTarget) -> AsyncIterator[Quotas]:
    client = redis_target.client()
    yield Quotas(client)
    await client.aclose()


@pytest.mark.parametrize(("limits", "requests", "admitted"), [
    # (limits, prompt tokens of each request in quick succession, which were admitted)
    (TenantLimits(rpm=3), [1, 1, 1, 1, 1], [True, True, True, False, False]),
    (TenantLimits(tpm=250), [100, 100, 100], [True, True, False]),
    (TenantLimits(tpm=250), [100, 200, 50], [True, False, True]),  # refused takes nothing
    (TenantLimits(rpm=2, tpm=1000), [10, 10, 10], [True, True, False]),
    (TenantLimits(), [10**9] * 3, [True] * 3),  # no limits
    (TenantLimits(tpm=100), [101], [False]),  # bigger than a minute's tokens: never
])
async def test_admission(quotas: Quotas, limits: TenantLimits, requests: list[int],
                         admitted: list[bool]) -> None:
    tenant = tenant_name()
    got = [(await quotas.admit(tenant, limits, n)).admitted for n in requests]
    assert got == admitted


async def test_refusal_says_when_to_retry(quotas: Quotas) -> None:
    tenant, limits = tenant_name(), TenantLimits(rpm=3)
    for _ in range(3):
        assert (await quotas.admit(tenant, limits, 0)).admitted
    refused = await quotas.admit(tenant, limits, 0)
    # one call every 20 s; the burst used it all: the next fits in (just under) 20 s
    assert not refused.admitted and 15.0 < refused.retry_after_s <= 20.0
    too_big = await quotas.admit(tenant, TenantLimits(tpm=10), 11)
    assert not too_big.admitted and too_big.retry_after_s == 0.0


async def test_completion_tokens_are_charged_after_the_call(quotas: Quotas) -> None:
    tenant, limits = tenant_name(), TenantLimits(tpm=300)
    assert (await quotas.admit(tenant, limits, 100)).admitted
    await quotas.charge(tenant, limits, 250)  # the answer was long: 350 of 300 used
    refused = await quotas.admit(tenant, limits, 10)
    assert not refused.admitted and refused.retry_after_s > 0


async def test_tenants_do_not_share_buckets(quotas: Quotas) -> None:
    a, b, limits = tenant_name(), tenant_name(), TenantLimits(rpm=1)
    assert (await quotas.admit(a, limits, 0)).admitted
    assert not (await quotas.admit(a, limits, 0)).admitted
    assert (await quotas.admit(b, limits, 0)).admitted


@pytest.mark.parametrize(("limits", "taken", "refunded", "then", "admitted"), [
    # (limits, prompt tokens admitted, how many of those calls are refunded, next request's
    #  tokens, whether it fits)
    (TenantLimits(rpm=2), [1, 1], 1, 1, False),  # a refused request still counts
    (TenantLimits(rpm=2), [1, 1], 0, 1, False),
    (TenantLimits(tpm=300), [200], 1, 300, True),  # its prompt tokens come back
    (TenantLimits(tpm=300), [200], 0, 300, False),
    (TenantLimits(tpm=300), [100, 150], 1, 150, True),  # only the refunded call's
    (TenantLimits(tpm=300), [100, 150], 1, 250, False),
    (TenantLimits(rpm=2, tpm=100), [60], 1, 100, True),
    (TenantLimits(rpm=1, tpm=100), [60], 1, 10, False),  # tokens back, not the request
])
async def test_a_refused_call_gives_back_its_prompt_tokens(
        quotas: Quotas, limits: TenantLimits, taken: list[int], refunded: int, then: int,
        admitted: bool) -> None:
    tenant = tenant_name()
    for n in taken:
        assert (await quotas.admit(tenant, limits, n)).admitted
    for n in taken[:refunded]:
        await quotas.refund(tenant, limits, n)
    assert (await quotas.admit(tenant, limits, then)).admitted is admitted


async def test_a_refund_never_gives_more_than_a_full_bucket(quotas: Quotas) -> None:
    tenant, limits = tenant_name(), TenantLimits(tpm=100)
    for _ in range(3):  # refunds of nothing taken
        await quotas.refund(tenant, limits, 50)
    got = [(await quotas.admit(tenant, limits, 50)).admitted for _ in range(3)]
    assert got == [True, True, False]
