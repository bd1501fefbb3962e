"""The gateway sheds a call at once, with when to retry, past max_inflight_calls; a tenant
below its share of the limit (by its fair-share weight) still gets in (one tenant's flood
must not refuse the others': overload review 2026-12-06), up to twice the limit in all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from cache.tenancy import Tenancy, TenantLimits
from gateway.auth import ApiKeyAuthenticator
from gateway.call_items import CallItem
from gateway.core import GatewayCore, GatewayError, Placement, inflight_share
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


async def _drain(core: GatewayCore, call_id: str, tenant: str = "t") -> list[CallItem]:
    placed = Placement("p", common_pb2.CallSpec(call_id=call_id), False)
    return [item async for item in core.run(tenant, placed, 10.0)]


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


async def _refused(limit: int, calls: list[tuple[str, int]],
                   weights: dict[str, float] | None = None,
                   weight_of: Callable[[str], float] | None = None) -> dict[str, int]:
    """Each tenant's calls refused, the calls started in this order and held in flight;
    `weights`: the tenants' weights (1 if not named); `weight_of`: the service's rule instead."""
    executor = HeldExecutor()
    core = GatewayCore(GatewayConfig(max_inflight_calls=limit), ApiKeyAuthenticator(dict, True),
                       None, executor,  # type: ignore[arg-type]
                       weight_of=weight_of or (lambda t: (weights or {}).get(t, 1.0)))
    tasks = []
    for tenant, n in calls:
        for i in range(n):
            tasks.append((tenant, asyncio.create_task(_drain(core, f"{tenant}{i}", tenant))))
            await asyncio.sleep(0)
    for _ in range(3):
        await asyncio.sleep(0)
    executor.release.set()
    got = {tenant: 0 for tenant, _ in calls}
    for tenant, task in tasks:
        try:
            await task
        except GatewayError as exc:
            assert exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            got[tenant] += 1
    assert core.inflight == 0
    return got


@pytest.mark.parametrize(("limit", "calls", "refused"), [
    # the flood takes the whole limit; each quiet tenant gets in up to its equal share
    (4, [("flood", 6), ("quiet", 1)], {"flood": 2, "quiet": 0}),
    (4, [("flood", 6), ("quiet", 3)], {"flood": 2, "quiet": 1}),  # its share: 4 / 2 = 2
    # a's share as it comes: 4 / 2 (two in); b's: 4 / 3 (one in, then a second as 1 < 4/3)
    (4, [("flood", 6), ("a", 3), ("b", 2)], {"flood": 2, "a": 1, "b": 0}),
    # never past twice the limit
    (2, [("flood", 2), ("a", 1), ("b", 1), ("c", 1), ("d", 1)], {"flood": 0, "a": 0, "b": 0,
                                                                  "c": 1, "d": 1}),
])
async def test_a_tenant_below_its_share_gets_in_while_another_floods(
        limit: int, calls: list[tuple[str, int]], refused: dict[str, int]) -> None:
    assert await _refused(limit, calls) == refused  # in this order: the flood first


@pytest.mark.parametrize(("weights", "inflight", "tenant", "share"), [
    ({}, {}, "a", 8.0),  # alone: the whole limit
    ({}, {"flood": 9}, "quiet", 4.0),  # equal weights: half
    ({}, {"flood": 9, "quiet": 1}, "quiet", 4.0),  # itself counted once
    ({"gold": 3.0}, {"flood": 9}, "gold", 6.0),  # 3 of 4 weights
    ({"gold": 3.0}, {"gold": 5}, "flood", 2.0),
    ({"a": 0.5, "b": 0.5}, {"a": 1, "b": 1, "c": 1}, "c", 4.0),
])
def test_inflight_share_follows_the_tenant_weights(weights: dict[str, float],
                                                   inflight: dict[str, int], tenant: str,
                                                   share: float) -> None:
    assert inflight_share(8, tenant, inflight, lambda t: weights.get(t, 1.0)) == share


async def test_a_heavier_tenant_gets_in_up_to_its_weighted_share() -> None:
    refused = await _refused(4, [("flood", 6), ("gold", 4)], {"gold": 3.0})
    assert refused == {"flood": 2, "gold": 1}  # gold's share: 4 x 3 / (3 + 1) = 3


async def test_configured_weights_count_where_a_tenant_has_no_record() -> None:
    """`planner.tenant_weights` give gold 3 (it has no record); the flood's record says 1."""
    tenancy = Tenancy(limits={"flood": TenantLimits(weight=1.0)})
    configured = {"gold": 3.0, "flood": 5.0}  # flood's record overrides its configured 5
    refused = await _refused(4, [("flood", 6), ("gold", 4)],
                             weight_of=lambda t: tenancy.weight_of(t, configured))
    assert refused == {"flood": 2, "gold": 1}  # gold's share: 4 x 3 / (3 + 1) = 3
