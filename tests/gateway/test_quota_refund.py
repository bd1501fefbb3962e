"""A call refused before it ran gives its quota back: by the planner whatever the reason (a
load shed included: overload review 2026-12-06, seven shed calls took a tenant's whole tpm
and its Retry-After of 1 s was no true answer), or by its engine at once as invalid; one
granted a worker that failed otherwise, or that produced output (security review
2026-12-06: real SGLang can end a stream with a 4xx abort), has spent tokens and keeps it.
A real Redis holds the buckets; the mesh run behind the executor is replaced by the outcome
under test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from types import SimpleNamespace

import grpc
import pytest
import redis.asyncio as aioredis

from cache.quotas import Quotas
from cache.tenancy import Tenancy, TenantLimits
from gateway.call_items import CallFailed, CallItem, Delta, Granted, NewProgram
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2


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


@pytest.mark.parametrize(("items", "named", "refunded", "charged"), [
    # gone while queued: never granted, nothing streamed: its reservation back
    ([], True, True, None),
    # granted, part streamed within its reservation: kept (its engine may have spent it)
    ([Granted("w0"), Delta("word " * 3)], True, False, None),
    # naming no max tokens (1,024 reserved), gone after streaming past that: charged it
    ([Granted("w0"), Delta("word" + " word" * 2999)], False, False, 3000),
    # restarted on another worker: the void attempt's text is not charged
    ([Granted("w0"), Delta("word" + " word" * 2999), Delta("word", restart=True)], False,
     False, None),
])
async def test_a_call_whose_caller_leaves_is_refunded_or_charged_what_it_streamed(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, items: list[CallItem], named: bool,
        refunded: bool, charged: int | None) -> None:
    """Cancellation review 2026-12-08 F2: a caller gone before the result (a disconnect, a
    cancel) kept queued calls' reservations (a tenant's next call was refused over quota),
    and a call naming no max tokens, read to its end but for the result, was charged nothing
    past its 1,024 reserved tokens (5,000 tokens streamed within a tpm of 2,000)."""
    tenant, client, executor = _executor(redis_url)
    refunds: list[int] = []
    charges: list[int] = []

    waiting = asyncio.Event()

    async def answer(*args: object) -> AsyncGenerator[CallItem, None]:
        for item in items:
            yield item
        waiting.set()
        await asyncio.Event().wait()  # the result never comes: its caller leaves first

    monkeypatch.setattr(executor, "_answer", answer)
    monkeypatch.setattr(executor._quotas, "refund_later",
                        lambda tenant, limits, prompt, reserved=0: refunds.append(reserved))
    monkeypatch.setattr(executor._quotas, "charge",
                        lambda tenant, limits, tokens, metered, reserved: charges.append(tokens))
    call = call_spec(prompt="hello", max_tokens=8) if named else call_spec(prompt="hello")

    async def caller() -> None:
        async for _ in executor.run(tenant, "p", call, 30.0):
            pass

    task = asyncio.create_task(caller())
    try:
        await waiting.wait()
        task.cancel()  # its caller is gone
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await client.aclose()
    assert bool(refunds) is refunded
    assert (charges[0] if charges and charges[0] > 1024 else None) == charged


async def test_a_caller_gone_after_its_result_was_charged_is_not_charged_again(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Diff review 2026-12-08: the result is charged as it comes, then a one-call program's
    report settles (and the answer is stored) before it is handed on; a caller gone then
    was charged again for what it streamed."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    limits = TenantLimits(tpm=100_000, max_programs=5)
    client = aioredis.from_url(redis_url)
    executor = CallExecutor(None, WorkerChannels(), quotas=Quotas(client),  # type: ignore[arg-type]
                            tenancy=lambda: Tenancy(tenants=frozenset({tenant}),
                                                    limits={tenant: limits}))
    charges: list[int] = []
    settling = asyncio.Event()
    text = "word" + " word" * 2999

    async def run(*args: object) -> AsyncGenerator[CallItem, None]:
        yield Granted("w0")
        yield Delta(text)
        yield common_pb2.CallResult(call_id="c", text=text, finish_reason="stop",
                                    usage=common_pb2.Usage(completion_tokens=3000))

    async def queued_through(timeout: float) -> None:
        settling.set()
        await asyncio.Event().wait()

    executor._mesh = SimpleNamespace(  # type: ignore[assignment]
        run=run, report_now=SimpleNamespace(queued_through=queued_through))
    monkeypatch.setattr(executor._quotas, "charge",
                        lambda tenant, limits, tokens, metered, reserved: charges.append(tokens))
    new = NewProgram(common_pb2.ProgramOptions(program_id="p"), 5, one_call=True)

    async def caller() -> None:
        async for _ in executor.run(tenant, "p", call_spec(prompt="hello"), 30.0,
                                    new_program=new):
            pass

    task = asyncio.create_task(caller())
    try:
        await settling.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await client.aclose()
    assert charges == [3000]
