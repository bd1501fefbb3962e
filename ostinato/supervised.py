"""A service's background loops, started again when they end unexpectedly.

A loop a service cannot do without (a worker's heartbeat, a gateway's tenancy reloads, the
planner's writes to Redis) that raised something it did not expect ended for good, unseen:
a worker whose heartbeat died was dropped by the planner and never came back, while its
health probes stayed green. Supervised, such an end is logged (an error, with the
traceback) and the loop starts again after a backoff, not the service stopped: a record a
loop cannot read would then stop every replica at every start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_S = 60.0  # a loop that ran this long before it ended starts again at the first backoff


def supervised(loop: Callable[[], Coroutine[Any, Any, None]], name: str,
               expected: tuple[type[BaseException], ...] = (), *,
               first_backoff_s: float = FIRST_BACKOFF_S) -> asyncio.Task[None]:
    """A task running `loop()` for as long as it is not cancelled: each time it raises (but
    `expected` exceptions, which end the task: someone else's to handle) or returns, it is
    logged and started again, after a backoff doubling up to MAX_BACKOFF_S."""

    async def run() -> None:
        backoff = first_backoff_s
        while True:
            began = time.monotonic()
            try:
                await loop()
            except expected:
                raise
            except Exception as exc:
                failure: Exception | None = exc
            else:
                failure = None
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a loop that swallowed our cancel
                raise asyncio.CancelledError()
            if time.monotonic() - began >= HEALTHY_S:
                backoff = first_backoff_s
            if failure is not None:
                log.error("a background loop failed: starting it again", loop=name,
                          in_s=backoff, error=repr(failure), exc_info=failure)
            else:
                log.error("a background loop ended: starting it again", loop=name, in_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF_S, max(backoff, 0.001) * 2)

    return asyncio.create_task(run(), name=name)
