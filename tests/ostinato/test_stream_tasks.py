"""StreamTasks: a task per message id; `cancel` cancels that id; a repeated id starts
nothing; when the caller closes its side, the tasks still running finish. A carrier's
messages are read as if each had come alone; `drained` hands on what has queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from ostinato.stream_tasks import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    StreamTasks,
    carrier,
    drained,
    has_batches,
)


@dataclass
class Msg:
    id: int = 0
    cancel: bool = False
    batch: list[Msg] = field(default_factory=list)


@pytest.mark.parametrize("carried", [False, True])
async def test_messages_run_by_id_cancels_stop_them_and_the_rest_finish(carried: bool) -> None:
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
    msgs = [Msg(1), Msg(2), Msg(2), Msg(3), Msg(2, cancel=True), Msg(9, cancel=True)]
    for msg in ([Msg(batch=msgs[:4]), Msg(batch=msgs[4:])] if carried else msgs):
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


async def test_drained_hands_on_what_has_queued_while_batching_and_stops_at_none() -> None:
    queue = asyncio.Queue[int | None]()
    for i in (1, 2, 3):
        queue.put_nowait(i)
    batching = [False]
    taken = []
    async for items in drained(queue, lambda: batching[0], lambda _: 1):
        taken.append(items)
        if items == [1]:
            batching[0] = True  # (the other end said it reads carriers)
        if items == [2, 3]:
            for i in (4, 5, None, 6):
                queue.put_nowait(i)
    assert taken == [[1], [2, 3], [4, 5]] and queue.get_nowait() == 6


async def test_drained_carries_at_most_max_batch() -> None:
    queue = asyncio.Queue[int | None]()
    for i in range(MAX_BATCH + 1):
        queue.put_nowait(i)
    queue.put_nowait(None)
    sizes = [len(items) async for items in drained(queue, lambda: True, lambda _: 1)]
    assert sizes == [MAX_BATCH, 1]


async def test_drained_carries_at_most_max_batch_bytes_and_a_bigger_item_alone() -> None:
    # a carrier past every receive limit would end the whole stream (every call on it)
    third = MAX_BATCH_BYTES // 3
    queue = asyncio.Queue[int | None]()
    for size in (third, third, third, third, 2 * MAX_BATCH_BYTES, 10, 10):
        queue.put_nowait(size)
    queue.put_nowait(None)
    taken = [items async for items in drained(queue, lambda: True, lambda n: n)]
    assert taken == [[third] * 3, [third], [2 * MAX_BATCH_BYTES], [10, 10]]
    assert all(sum(items) <= MAX_BATCH_BYTES for items in taken if len(items) > 1)


def test_carrier_is_the_message_when_alone_and_metadata_says_who_reads_carriers() -> None:
    assert carrier(Msg, [Msg(1)]) == Msg(1)
    assert carrier(Msg, [Msg(1), Msg(2)]) == Msg(batch=[Msg(1), Msg(2)])
    assert has_batches((("traceparent", "x"), ("ostinato-batches", "1")))
    assert not has_batches((("traceparent", "x"),)) and not has_batches(None)


async def test_drained_hands_on_an_item_at_once_without_waiting_for_others_to_join() -> None:
    # (what queues in the next loop turn goes as the next carrier: no turn of the loop is
    # spent on every message waiting for company)
    queue = asyncio.Queue[int | None]()
    queue.put_nowait(1)
    loop = asyncio.get_running_loop()
    loop.call_soon(queue.put_nowait, 2)
    loop.call_soon(queue.put_nowait, 3)
    loop.call_soon(queue.put_nowait, None)
    taken = [items async for items in drained(queue, lambda: True, lambda _: 1)]
    assert taken == [[1], [2, 3]]
