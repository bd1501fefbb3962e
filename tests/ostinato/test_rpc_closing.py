"""`closer`: an RPC's done callback that closes its handler's generator where gRPC left it
suspended at a `yield` (ostinato/rpc_closing.py). Pure asyncio."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator

from ostinato.rpc_closing import closer

WHO = contextvars.ContextVar("WHO", default="the loop's")


async def _chunks(ended: list[str], gate: asyncio.Event | None = None) -> AsyncGenerator[int, None]:
    try:
        for i in range(1_000):
            if gate is not None:
                await gate.wait()
            yield i
    finally:
        ended.append(WHO.get())


async def _closes(tasks: set[asyncio.Task[None]]) -> None:
    await asyncio.gather(*list(tasks))


async def test_a_generator_left_at_a_yield_is_closed_in_the_handlers_context() -> None:
    ended: list[str] = []
    generator = _chunks(ended)
    await anext(generator)  # left at its yield, as gRPC leaves a handler it cancelled
    WHO.set("the handler's")
    ctx = contextvars.copy_context()
    WHO.set("another")
    tasks: set[asyncio.Task[None]] = set()
    closer(generator, ctx, tasks)(object())
    await _closes(tasks)
    assert ended == ["the handler's"]
    assert not tasks  # (kept only while the close runs)


async def test_an_ended_generator_is_left_as_it_is() -> None:
    ended: list[str] = []
    generator = _chunks(ended)
    assert len([i async for i in generator]) == 1_000
    tasks: set[asyncio.Task[None]] = set()
    closer(generator, None, tasks)(object())
    assert not tasks and ended == ["the loop's"]


async def test_a_running_generator_is_left_to_its_own_cancellation() -> None:
    ended: list[str] = []
    gate = asyncio.Event()
    generator = _chunks(ended, gate)
    reading = asyncio.ensure_future(anext(generator))
    await asyncio.sleep(0)  # it waits inside, at the gate: running
    tasks: set[asyncio.Task[None]] = set()
    closer(generator, None, tasks)(object())
    await _closes(tasks)  # aclose refused (running): nothing raised
    assert ended == []
    reading.cancel()  # what gRPC does to a handler waiting inside
    await asyncio.gather(reading, return_exceptions=True)
    assert ended == ["the loop's"]
