"""Background loops started again when they end unexpectedly (ostinato/supervised.py)."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from ostinato.supervised import supervised


class Deposed(Exception):
    pass


@pytest.mark.parametrize(("first_end", "logged"), [
    (RuntimeError("a bug"), "a background loop failed: starting it again"),
    (None, "a background loop ended: starting it again"),  # it returned
])
async def test_a_loop_that_ends_is_logged_and_started_again(first_end: Exception | None,
                                                            logged: str) -> None:
    runs = 0
    second = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            if first_end is not None:
                raise first_end
            return
        second.set()
        await asyncio.Event().wait()  # runs on

    with capture_logs() as logs:
        task = supervised(loop, "the loop", first_backoff_s=0.0)
        async with asyncio.timeout(30):
            await second.wait()
    assert runs == 2 and not task.done()
    assert [(e["event"], e["loop"], e["log_level"]) for e in logs] == [(logged, "the loop", "error")]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_expected_end_ends_the_task() -> None:
    async def loop() -> None:
        raise Deposed()

    task = supervised(loop, "the loop", (Deposed,), first_backoff_s=0.0)
    with pytest.raises(Deposed):
        await task


async def test_a_cancelled_loop_is_not_started_again() -> None:
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        await asyncio.Event().wait()

    task = supervised(loop, "the loop", first_backoff_s=0.0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 1


async def test_a_loop_that_swallows_its_cancel_is_not_started_again() -> None:
    runs = 0
    started = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # swallowed (as redis-py did: cache/redis_client.py keeping_cancel)

    task = supervised(loop, "the loop", first_backoff_s=0.0)
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 1
