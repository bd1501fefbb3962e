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


async def with_retry(rpc: Callable[..., Awaitable[T]], request: object, budget_s: float, *,
                     attempt_timeout_s: float | None = None, first_backoff_s: float = 0.05,
                     max_backoff_s: float = 1.0,
                     retry_on: frozenset[grpc.StatusCode] = RETRYABLE) -> T:
    """Calls `rpc(request, timeout=...)` until it succeeds, fails with a non-retryable status,
    or `budget_s` is spent; the last error is raised then."""
    deadline = time.monotonic() + budget_s
    backoff = first_backoff_s
    while True:
        remaining = deadline - time.monotonic()
        timeout = remaining if attempt_timeout_s is None else min(remaining, attempt_timeout_s)
        try:
            return await rpc(request, timeout=max(0.001, timeout))
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in retry_on or time.monotonic() + backoff >= deadline:
                raise
        await asyncio.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)
