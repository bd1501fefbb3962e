"""Retrying unary gRPC calls through a peer's restart (UNAVAILABLE), within a time budget.

Used where the call is idempotent by construction: the gateway's Admit/RegisterProgram/
EndProgram (ids chosen by the caller) and the worker's completion reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
# default) while every probe stays green (deploy review 2026-12-05 F2). The gateway's calls
# share the count (`Outage`): past it, a new call fails after one attempt.
PLANNER_WAIT_S = 30.0
_AT_ONCE_S = 1.0  # an attempt that failed within this was refused, not served
# Attempts that waited and yet were not served, by gRPC's words for them, where the planner
# is frozen (SIGSTOP, a node gone silent: its connections open, nothing answered):
# - it never left the channel: no connection came up (TCP accepted into the frozen
#   process's backlog, no HTTP/2 SETTINGS ever; the LB policy's words);
_UNREACHED = ("connections to all backends failing", "failed to connect to all addresses")
# - its planner stopped answering while it waited: gRPC closed the connection, a ping
#   unanswered; counted as silent since SILENT_S before (a keepalive ping goes 4 s after
#   the last bytes read and has 2 s to be answered: planner/ha_channel.py).
_SILENT = ("ping timeout", "keepalive watchdog timeout")
SILENT_S = 6.0
# Ends that tell nothing of the peer (no answer came, or the caller gave up): an outage goes on
_NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.CANCELLED})


@dataclass
class Outage:
    """Since when the calls to one peer (the planner, whichever instance serves) have been
    failing, shared by every call to it: a call that starts during an outage already
    `failing_for_s` long makes one attempt (it tells whether the peer is back), not its own
    wait of that long; any answer from the peer ends the outage."""

    since: float | None = None


async def with_retry(rpc: Callable[..., Awaitable[T]], request: object, budget_s: float, *,
                     attempt_timeout_s: float | None = None, first_backoff_s: float = 0.05,
                     max_backoff_s: float = 1.0,
                     retry_on: frozenset[grpc.StatusCode] = RETRYABLE,
                     failing_for_s: float | None = None, outage: Outage | None = None) -> T:
    """Calls `rpc(request, timeout=...)` until it succeeds, fails with a non-retryable status,
    or `budget_s` is spent, or (`failing_for_s`) its attempts have been refused at once
    (within a second each) for that long; the last error is raised then. (An attempt that
    waited before it failed, an admission queued at a planner that died, starts the count
    again; one that waited on a planner that answered nothing, frozen, does not:
    _failing_since.) `outage`: the count shared with the other calls to the same peer."""
    deadline = time.monotonic() + budget_s
    backoff = first_backoff_s
    failing_since: float | None = None  # (with `outage`: its count, read at each failure)
    while True:
        began = time.monotonic()
        remaining = deadline - began
        timeout = remaining if attempt_timeout_s is None else min(remaining, attempt_timeout_s)
        try:
            answer = await rpc(request, timeout=max(0.001, timeout))
        except grpc.aio.AioRpcError as exc:
            now = time.monotonic()
            if outage is not None:
                if exc.code() not in retry_on:
                    if exc.code() not in _NO_ANSWER:  # the peer answered: no outage
                        outage.since = None
                    raise
                failing_since = outage.since  # (another call may have ended or begun it)
            failing_since = _failing_since(exc, began, now, failing_since)
            if outage is not None:
                outage.since = failing_since
            if exc.code() not in retry_on or now + backoff >= deadline or (
                    failing_for_s is not None and now + backoff - failing_since >= failing_for_s):
                raise
        else:
            if outage is not None:
                outage.since = None
            return answer
        await asyncio.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)


def _failing_since(exc: grpc.aio.AioRpcError, began: float, now: float,
                   since: float | None) -> float:
    """Since when the calls have been failing, with this attempt's (`began`..`now`) end."""
    details = exc.details() or ""
    if now - began <= _AT_ONCE_S or any(words in details for words in _UNREACHED):
        return began if since is None else since  # refused, or taken by no planner
    if any(words in details for words in _SILENT):
        answered = now - SILENT_S  # (counted as) its planner's last answer
        if answered <= began:
            return began if since is None else since
        return answered
    return now  # served until it failed (an admission queued at a planner that died)
