"""A call refused as invalid gives its quota back only when it produced nothing: an engine
that refuses a request after streaming part of its answer (security review 2026-12-06: real
SGLang can end a stream with a 4xx abort) has spent those tokens. A real Redis holds the
buckets; the mesh run behind the executor is replaced by the outcome under test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import grpc
import pytest
import redis.asyncio as aioredis

from cache.quotas import Quotas
from cache.tenancy import Tenancy, TenantLimits
from gateway.call_items import CallFailed, CallItem, Delta
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.sdk_types import call_spec


@pytest.mark.parametrize(("streamed", "refunded"), [
    ([], True),  # refused before anything ran: given back
    ([""], True),  # an empty delta is no output
    (["Par"], False),  # refused after part of its answer: kept
])
async def test_an_invalid_call_is_refunded_only_if_it_produced_nothing(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, streamed: list[str],
        refunded: bool) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    limits = TenantLimits(tpm=10_000)
    client = aioredis.from_url(redis_url)
    executor = CallExecutor(None, WorkerChannels(), quotas=Quotas(client),  # type: ignore[arg-type]
                            tenancy=lambda: Tenancy(tenants=frozenset({tenant}),
                                                    limits={tenant: limits}))
    refunds: list[int] = []

    async def answer(*args: object) -> AsyncGenerator[CallItem, None]:
        for text in streamed:
            yield Delta(text)
        raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, "the engine refused it")

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
