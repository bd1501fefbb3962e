"""A call whose worker failed tells its client so without the worker's words: they name the
mesh's inner addresses (the engine's URL), and go to the gateway's log. Whatever the status
the worker ended the call with: an engine that timed out (DEADLINE_EXCEEDED, "worker w0:
engine http://... timed out") names its URL as one that broke does (review 2026-12-07)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from cache.tenancy import Tenancy
from gateway.call_items import CallFailed
from ostinato.v1 import common_pb2, worker_pb2
from tests.gateway.stand_in_worker import gateway_on
from workers.generate_stream import GenerateRefused

ENGINE = "http://10.9.8.7:30000"


@pytest.mark.parametrize(("code", "details", "told"), [
    (grpc.StatusCode.UNAVAILABLE, f"worker w0: engine {ENGINE} answered 503",
     "failed on each of its 3 attempts"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, f"worker w0: engine {ENGINE} timed out",
     "ran past its deadline"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, f"worker w0: engine {ENGINE} is full",
     "worker ended it (RESOURCE_EXHAUSTED)"),
])
async def test_a_failed_workers_words_do_not_reach_the_client(
        code: grpc.StatusCode, details: str, told: str) -> None:
    async def refused(request: worker_pb2.GenerateRequest,
                      ) -> AsyncIterator[worker_pb2.GenerateChunk]:
        raise GenerateRefused(code, details)
        yield  # (a generator)

    async with gateway_on(refused, Tenancy(tenants=frozenset({"acme"}))) as gateway:
        question = [common_pb2.Message(role="user", content="hello")]
        placed = await gateway.place("acme", common_pb2.CallSpec(
            messages=question, sampling=common_pb2.SamplingParams(max_new_tokens=4)))
        with pytest.raises(CallFailed) as failed:
            async for _ in gateway.run("acme", placed, 30.0):
                pass
    assert failed.value.code == code
    assert told in failed.value.message
    assert ENGINE not in failed.value.message and "10.9.8.7" not in failed.value.message
