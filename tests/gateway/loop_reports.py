"""What the event loop reports to its exception handler ("Task was destroyed but it is
pending!", "Task exception was never retrieved"), collected: a stream client whose ended
stream leaves grpc's request task waiting is found by the collector, not by its caller."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def loop_reports() -> AsyncIterator[list[dict[str, object]]]:
    """The reports made in the block, and those of whatever it left for the collector."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        yield reported
        for _ in range(5):  # (a task ended by the block ends on a later turn of the loop)
            await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(handler)


async def ended(task: asyncio.Task[None] | None) -> None:
    """`task` (a stream's reader) has ended, however (bounded)."""
    assert task is not None
    await asyncio.wait({task}, timeout=10.0)
    assert task.done()
