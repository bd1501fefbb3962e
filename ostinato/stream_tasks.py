"""Serving a multiplexed stream (AdmitStream, GenerateStream): each request message runs as
its own task, keyed by the message's id; a message with `cancel` set cancels that id's task
(as a cancelled RPC); when the caller closes its side, what it asked for still finishes.

Carriers: under load, what has queued at one end of such a stream goes as one message, a
carrier whose `batch` holds the messages (each read as if it had come alone), so that
gRPC's per-message work (a write, a completion, a wake-up at both ends) is paid once for
many. Each end sends carriers only to one that said it reads them: the caller in its
call metadata, the server in its initial metadata (`BATCHES`); an end from before
carriers says nothing and gets one message at a time.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import grpc

BATCHES = "ostinato-batches"  # metadata key: this end reads carriers
MAX_BATCH = 256  # messages per carrier
# bytes per carrier, about: under every receive limit (gRPC's default 4 MiB; a message over
# it goes alone, as without carriers)
MAX_BATCH_BYTES = 1 << 20

T = TypeVar("T")


def unbatched(msg: Any) -> Sequence[Any]:
    """The messages a message stands for: a carrier's, or itself."""
    return msg.batch or (msg,)


def carrier(cls: Callable[..., T], msgs: list[T]) -> T:
    """One message for `msgs`: the message itself when alone, else a carrier of them."""
    return msgs[0] if len(msgs) == 1 else cls(batch=msgs)


async def drained(queue: asyncio.Queue[T | None], batching: Callable[[], bool],
                  size: Callable[[T], int]) -> AsyncIterator[list[T]]:
    """The items of `queue` up to a None: one at a time, or, while `batching()`, each
    time what had queued, in order, up to MAX_BATCH items and MAX_BATCH_BYTES of their
    `size` (an item bigger than that goes alone).

    An item is handed on as soon as it is taken, never held for others to join it: what
    queues while the consumer writes the last batch (a gRPC write awaits its completion)
    goes as the next. (Waiting one loop turn for more, as before session 32, cost each
    message on every stream a turn of the loop on a call's path: 4 turns a call.)"""
    while (item := await queue.get()) is not None:
        items = [item]
        total = -1  # the items' size, once there is more to take
        while batching() and not queue.empty() and len(items) < MAX_BATCH:
            more = queue.get_nowait()
            if more is None:
                yield items
                return
            if total < 0:
                total = sum(size(i) for i in items)
            more_bytes = size(more)
            if total + more_bytes > MAX_BATCH_BYTES:  # this carrier is full: the next
                yield items  # starts with `more`
                items, total = [more], more_bytes
                continue
            items.append(more)
            total += more_bytes
        yield items


def has_batches(metadata: Any) -> bool:
    """Whether call or initial metadata says its sender reads carriers."""
    return any(key == BATCHES for key, _ in metadata or ())


async def agree_batches(context: grpc.aio.ServicerContext) -> bool:
    """A stream's server: tells the caller (initial metadata) that it reads carriers;
    whether the caller does too (so may be sent carriers)."""
    await context.send_initial_metadata(((BATCHES, "1"),))
    return has_batches(context.invocation_metadata())


class StreamTasks:
    def __init__(self, run: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
        self._run = run  # one message's work (its replies go out through the caller's queue)
        self.running: dict[int, asyncio.Task[None]] = {}

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Starts or cancels a task per message (a carrier's each) until the caller closes
        its side, then waits for the tasks still running."""
        async for received in requests:
            for msg in unbatched(received):
                self._take(msg)
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)

    def _take(self, msg: Any) -> None:
        if msg.cancel:
            task = self.running.get(msg.id)
            if task is not None:
                task.cancel()
        elif msg.id not in self.running:
            task = asyncio.get_running_loop().create_task(self._run(msg))
            self.running[msg.id] = task
            # (a callback, not a `finally` in the task: a task cancelled before it ever
            # ran never enters its coroutine, and would stay listed)
            task.add_done_callback(functools.partial(self._forget, msg.id))

    def _forget(self, key: int, _: object) -> None:
        self.running.pop(key, None)

    def cancel_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
