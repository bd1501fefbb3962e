"""Retrying unary gRPC calls through a peer's restart (UNAVAILABLE), within a time budget.

Used where the call is idempotent by construction: the gateway's Admit/RegisterProgram/
EndProgram (ids chosen by the caller) and the worker's completion reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

T = TypeVar("T")

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
# For requests that are idempotent at the receiver (a completion report: the planner ignores
# one it already has), any transport-level end is worth another attempt.
RETRYABLE_IDEMPOTENT = RETRYABLE | {grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
# How long a gateway's call waits for a planner that answers nothing (none serving: a
# failover takes a lease's TTL, about 5 s; a restart a few): past it the call fails
# UNAVAILABLE (HTTP 503) instead of waiting out its whole time limit (10 minutes by
# default) while every probe stays green (deploy review 2026-12-05 F2).
PLANNER_WAIT_S = 30.0
_AT_ONCE_S = 1.0  # an attempt that failed within this was refused, not served


async def with_retry(rpc: Callable[..., Awaitable[T]], request: object, budget_s: float, *,
                     attempt_timeout_s: float | None = None, first_backoff_s: float = 0.05,
                     max_backoff_s: float = 1.0,
                     retry_on: frozenset[grpc.StatusCode] = RETRYABLE,
                     failing_for_s: float | None = None) -> T:
    """Calls `rpc(request, timeout=...)` until it succeeds, fails with a non-retryable status,
    or `budget_s` is spent, or (`failing_for_s`) its attempts have been refused at once
    (within a second each) for that long; the last error is raised then. (An attempt that
    waited before it failed, an admission queued at a planner that died, starts the count
    again.)"""
    deadline = time.monotonic() + budget_s
    backoff = first_backoff_s
    failing_since: float | None = None
    while True:
        began = time.monotonic()
        remaining = deadline - began
        timeout = remaining if attempt_timeout_s is None else min(remaining, attempt_timeout_s)
        try:
            return await rpc(request, timeout=max(0.001, timeout))
        except grpc.aio.AioRpcError as exc:
            now = time.monotonic()
            if now - began > _AT_ONCE_S:  # it waited (was served) before it failed
                failing_since = now
            elif failing_since is None:
                failing_since = began
            if exc.code() not in retry_on or now + backoff >= deadline or (
                    failing_for_s is not None and now + backoff - failing_since >= failing_for_s):
                raise
        await asyncio.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)
