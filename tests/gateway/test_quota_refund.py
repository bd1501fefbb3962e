"""A call refused before it ran gives its quota back: by the planner whatever the reason (a
load shed included: overload review 2026-12-06, seven shed calls took a tenant's whole tpm
and its Retry-After of 1 s was no true answer), or by its engine at once as invalid; one
granted a worker that failed otherwise, or that produced output (security review
2026-12-06: real SGLang can end a stream with a 4xx abort), has spent tokens and keeps it.
A real Redis holds the buckets; the mesh run behind the executor is replaced by the outcome
under test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import grpc
import pytest
import redis.asyncio as aioredis

from cache.quotas import Quotas
from cache.tenancy import Tenancy, TenantLimits
from gateway.call_items import CallFailed, CallItem, Delta, Granted
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.sdk_types import call_spec


def _executor(redis_url: str) -> tuple[str, aioredis.Redis, CallExecutor]:
    """A tenant with a tpm, a client of the real Redis, the executor metering against it."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    limits = TenantLimits(tpm=10_000)
    client = aioredis.from_url(redis_url)
    executor = CallExecutor(None, WorkerChannels(), quotas=Quotas(client),  # type: ignore[arg-type]
                            tenancy=lambda: Tenancy(tenants=frozenset({tenant}),
                                                    limits={tenant: limits}))
    return tenant, client, executor


@pytest.mark.parametrize(("granted", "streamed", "code", "refunded"), [
    (True, [], grpc.StatusCode.INVALID_ARGUMENT, True),  # its engine refused it at once
    (True, [""], grpc.StatusCode.INVALID_ARGUMENT, True),  # an empty delta is no output
    (True, ["Par"], grpc.StatusCode.INVALID_ARGUMENT, False),  # after part of its answer
    # refused by the planner, never granted: given back, whatever the reason
    (False, [], grpc.StatusCode.RESOURCE_EXHAUSTED, True),  # a load shed
    (False, [], grpc.StatusCode.NOT_FOUND, True),
    (False, [], grpc.StatusCode.DEADLINE_EXCEEDED, True),
    # granted, then failed otherwise: its engine may have spent tokens
    (True, [], grpc.StatusCode.UNAVAILABLE, False),
    (True, [], grpc.StatusCode.DEADLINE_EXCEEDED, False),
])
async def test_a_call_is_refunded_only_if_it_never_ran(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, granted: bool, streamed: list[str],
        code: grpc.StatusCode, refunded: bool) -> None:
    tenant, client, executor = _executor(redis_url)
    refunds: list[int] = []

    async def answer(*args: object) -> AsyncGenerator[CallItem, None]:
        if granted:
            yield Granted("w0")
        for text in streamed:
            yield Delta(text)
        raise CallFailed(code, "refused")

    async def refund(tenant: str, limits: TenantLimits, prompt_tokens: int,
                     reserved: int = 0) -> None:
        refunds.append(reserved)

    monkeypatch.setattr(executor, "_answer", answer)
    monkeypatch.setattr(executor._quotas, "refund", refund)
    try:
        with pytest.raises(CallFailed):
            async for _ in executor.run(tenant, "p", call_spec(prompt="hello", max_tokens=8), 30.0):
                pass
    finally:
        await client.aclose()
    assert bool(refunds) is refunded


@pytest.mark.parametrize(("code", "metered_again"), [
    (grpc.StatusCode.NOT_FOUND, True),  # refunded: the request's next attempt takes it again
    (grpc.StatusCode.UNAVAILABLE, False),  # granted, kept: the next attempt does not
])
async def test_a_refunded_attempt_leaves_the_next_one_to_take_its_quota(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, code: grpc.StatusCode,
        metered_again: bool) -> None:
    """Diff review 2026-12-06: a conversation whose program expired is refused NOT_FOUND
    before its grant (refunded), then run again with the first attempt's `metered`: it ran
    unmetered and its end gave back more, leaving the tenant credited."""
    tenant, client, executor = _executor(redis_url)

    async def answer(*args: object) -> AsyncGenerator[CallItem, None]:
        if code is not grpc.StatusCode.NOT_FOUND:
            yield Granted("w0")
        raise CallFailed(code, "refused")

    monkeypatch.setattr(executor, "_answer", answer)
    try:
        with pytest.raises(CallFailed) as failed:
            async for _ in executor.run(tenant, "p", call_spec(prompt="hello", max_tokens=8),
                                        30.0):
                pass
    finally:
        await client.aclose()
    assert failed.value.metered is not metered_again
