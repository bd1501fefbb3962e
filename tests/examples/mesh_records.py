"""What the examples' tests read back from the session mesh: tenants provisioned in its
Redis for one test each, and the planner's records of programs and calls (cache/keys.py,
planner/records.py), which are the mesh's own view of what a client did."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterable
from typing import Any

import grpc
import redis
import redis.asyncio as aioredis

from cache import keys
from cache.tenant_directory import TenantDirectory
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc
from tests.stored_ids import stored_program_id

Record = dict[str, Any]  # a call as the planner persisted it (planner/records.py call_json)


def provision_tenants(redis_url: str, gateway: str, tenants: Iterable[str],
                      timeout_s: float = 15.0) -> dict[str, str]:
    """A tenant and an API key for each name, written to the mesh's Redis the way `ostinato
    tenants add-key` does; returns tenant -> key once the gateway accepts every key (it
    reloads the tenancy data every 2 s)."""
    api_keys = {tenant: f"key-{tenant}" for tenant in tenants}

    async def write() -> None:
        client = aioredis.from_url(redis_url)
        try:
            directory = TenantDirectory(client)
            for tenant, api_key in api_keys.items():
                await directory.add_key(tenant, api_key, create=True)
        finally:
            await client.aclose()

    asyncio.run(write())
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        for api_key in api_keys.values():
            while True:
                try:
                    stub.CacheStats(gateway_pb2.CacheStatsRequest(), timeout=5,
                                    metadata=(("authorization", f"Bearer {api_key}"),))
                    break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAUTHENTICATED or time.monotonic() > deadline:
                        raise
                time.sleep(0.05)  # polling the gateway's reload, not waiting a fixed time
    return api_keys


def program_calls(store: redis.Redis, program_id: str, expected: int,
                  timeout_s: float = 10.0, *, tenant: str | None = None) -> dict[str, Record]:
    """The program's calls by id once `expected` of them are recorded as done (the planner
    persists off the request path, so its records may trail the responses briefly).
    `tenant`: `program_id` is the id that tenant's client knows; None: the planner's own
    (as `tenant_programs` gives it)."""
    stored = program_id if tenant is None else stored_program_id(store, tenant, program_id)
    deadline = time.monotonic() + timeout_s
    while True:
        raw: dict[str, str] = store.hgetall(keys.program_calls(stored))  # type: ignore[assignment]
        calls = {k: json.loads(v) for k, v in raw.items()}
        done = sum(c["state"] == "done" for c in calls.values())
        if done >= expected or time.monotonic() > deadline:
            return calls
        time.sleep(0.02)


def tenant_programs(store: redis.Redis, tenant: str, at_least: int = 1,
                    timeout_s: float = 10.0) -> list[str]:
    """The tenant's program ids, once there are `at_least` of them (or at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        ids: list[str] = store.zrange(keys.tenant_programs(tenant), 0, -1)  # type: ignore[assignment]
        if len(ids) >= at_least or time.monotonic() > deadline:
            return ids
        time.sleep(0.02)


def assert_chain(calls: dict[str, Record], order: list[str]) -> None:
    """`order` are all of the program's calls, each after the first a child of the one before,
    on one thread, all done."""
    assert set(calls) == set(order), f"recorded {sorted(calls)}, expected {order}"
    assert all(c["state"] == "done" for c in calls.values()), calls
    assert calls[order[0]]["parents"] == []
    for parent, child in itertools.pairwise(order):
        assert calls[child]["parents"] == [parent], (child, calls[child]["parents"], parent)
    assert len({c["thread_id"] for c in calls.values()}) == 1
