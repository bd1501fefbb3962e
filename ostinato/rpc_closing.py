"""Closing a server-streaming RPC's generator when the RPC ends.

gRPC (grpc.aio) cancels a streaming handler whose RPC ends (its caller cancelled or went
away, its deadline passed) at the await it is in. Where that await is gRPC's own, sending
one of the handler's messages, the handler's async generator is left suspended at its
`yield`, where no cancellation reaches it, and is closed only when it is collected: seconds
later, or not until the cycle collector runs. What it holds runs on meanwhile (a worker's
engine request, with no completion report; a gateway's call on a worker; a DAG's node
tasks). `closer`, given as the RPC's done callback, closes it then.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_closing: set[asyncio.Task[None]] = set()  # closes under way (a task is kept while it runs)


def closer(generator: AsyncGenerator[Any, None], ctx: contextvars.Context | None = None,
           tasks: set[asyncio.Task[None]] | None = None) -> Callable[[object], None]:
    """An RPC done callback (`context.add_done_callback`) that closes `generator` if it is
    still open (one that ended, as an RPC that answered, is left as it is). `ctx`: the
    context it closes in (the handler's: what it reads of its own, such as its deadline);
    `tasks`: where the close's task is kept while it runs (a service's, to wait for)."""
    def close(_: object) -> None:
        if getattr(generator, "ag_frame", None) is None:  # ended
            return
        task = asyncio.get_running_loop().create_task(_close(generator), context=ctx)
        held = _closing if tasks is None else tasks
        held.add(task)
        task.add_done_callback(held.discard)
    return close


async def _close(generator: AsyncGenerator[Any, None]) -> None:
    if getattr(generator, "ag_running", False):  # running: its own cancellation ends it
        return
    try:
        await generator.aclose()
    except Exception:  # its cleanup failed (a bug): said, not left to "never retrieved"
        log.exception("closing a streaming handler failed")
