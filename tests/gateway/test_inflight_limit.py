"""The gateway sheds a call at once, with when to retry, past max_inflight_calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from gateway.auth import ApiKeyAuthenticator
from gateway.call_items import CallItem
from gateway.core import GatewayCore, GatewayError, Placement
from ostinato.config import GatewayConfig
from ostinato.v1 import common_pb2


class HeldExecutor:
    """Runs calls until released: the calls in flight are the ones started, not finished."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def run(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                  timeout_s: float, new_program: object = None,
                  resend: bool = False, implicit: bool = False,
                  whole: bool = False) -> AsyncIterator[CallItem]:
        await self.release.wait()
        yield common_pb2.CallResult(call_id=call.call_id, text="ok")


async def _drain(core: GatewayCore, call_id: str) -> list[CallItem]:
    placed = Placement("p", common_pb2.CallSpec(call_id=call_id), False)
    return [item async for item in core.run("t", placed, 10.0)]


@pytest.mark.parametrize(("limit", "calls", "refused"), [(2, 3, 1), (0, 4, 0), (4, 4, 0)])
async def test_calls_past_the_limit_are_refused_at_once(limit: int, calls: int, refused: int) -> None:
    executor = HeldExecutor()
    core = GatewayCore(GatewayConfig(max_inflight_calls=limit), ApiKeyAuthenticator(dict, True),
                       None, executor)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(_drain(core, f"c{i}")) for i in range(calls)]
    await asyncio.sleep(0)  # every call has started (or been refused)
    for _ in range(3):
        await asyncio.sleep(0)
    executor.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, GatewayError)]
    assert len(errors) == refused
    assert all(e.code == grpc.StatusCode.RESOURCE_EXHAUSTED and e.retry_after_s for e in errors)
    assert core.inflight == 0  # finished and refused calls both released their slot
