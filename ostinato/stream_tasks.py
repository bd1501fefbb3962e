"""Serving a multiplexed stream (AdmitStream, GenerateStream): each request message runs as
its own task, keyed by the message's id; a message with `cancel` set cancels that id's task
(as a cancelled RPC); when the caller closes its side, what it asked for still finishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


class StreamTasks:
    def __init__(self, run: Callable[[Any], Awaitable[None]]) -> None:
        self._run = run  # one message's work (its replies go out through the caller's queue)
        self.running: dict[int, asyncio.Task[None]] = {}

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Starts or cancels a task per message until the caller closes its side, then
        waits for the tasks still running."""
        async for msg in requests:
            if msg.cancel:
                task = self.running.get(msg.id)
                if task is not None:
                    task.cancel()
            elif msg.id not in self.running:
                task = asyncio.get_running_loop().create_task(self._run(msg))
                self.running[msg.id] = task
                # (a callback, not a `finally` in the task: a task cancelled before it ever
                # ran never enters its coroutine, and would stay listed)
                task.add_done_callback(lambda _, key=msg.id: self.running.pop(key, None))
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)

    def cancel_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
