"""StreamTasks: a task per message id; `cancel` cancels that id; a repeated id starts
nothing; when the caller closes its side, the tasks still running finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ostinato.stream_tasks import StreamTasks


@dataclass
class Msg:
    id: int
    cancel: bool = False


async def test_messages_run_by_id_cancels_stop_them_and_the_rest_finish() -> None:
    release = asyncio.Event()
    finished: list[int] = []
    cancelled: list[int] = []

    async def run(msg: Msg) -> None:
        try:
            await release.wait()
            finished.append(msg.id)
        except asyncio.CancelledError:
            cancelled.append(msg.id)
            raise

    tasks = StreamTasks(run)
    sent = asyncio.Queue[Msg | None]()

    async def requests() -> AsyncIterator[Msg]:
        while (msg := await sent.get()) is not None:
            yield msg

    reader = asyncio.create_task(tasks.read(requests()))
    for msg in (Msg(1), Msg(2), Msg(2), Msg(3), Msg(2, cancel=True), Msg(9, cancel=True)):
        sent.put_nowait(msg)
    sent.put_nowait(None)  # the caller closes its side
    while set(tasks.running) != {1, 3} or not sent.empty():
        await asyncio.sleep(0)  # until the reader has taken every message and 2 is gone
    assert not reader.done()  # it waits for 1 and 3
    release.set()
    await asyncio.wait_for(reader, 10)  # (a hang guard, not a timing)
    # 2 was cancelled (before or after it started: either way it is no longer listed)
    assert sorted(finished) == [1, 3] and cancelled in ([], [2]) and tasks.running == {}


async def test_cancel_all_cancels_what_runs() -> None:
    async def run(msg: Msg) -> None:
        await asyncio.Event().wait()

    tasks = StreamTasks(run)

    async def requests() -> AsyncIterator[Msg]:
        yield Msg(1)
        yield Msg(2)
        await asyncio.Event().wait()

    reader = asyncio.create_task(tasks.read(requests()))
    while len(tasks.running) != 2:
        await asyncio.sleep(0)
    running = list(tasks.running.values())
    tasks.cancel_all()
    reader.cancel()
    await asyncio.gather(*running, reader, return_exceptions=True)
    assert all(t.cancelled() for t in running)
