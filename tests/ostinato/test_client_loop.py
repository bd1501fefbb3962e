"""sdk_loop.LoopThread: how ostinato.Client runs ostinato.AsyncClient from blocking code."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from ostinato.sdk_loop import LoopThread

CALLER = contextvars.ContextVar("CALLER", default="")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-loop")
    yield thread
    thread.close()


async def _caller_and_thread() -> tuple[str, str]:
    return CALLER.get(), threading.current_thread().name


def test_coroutines_run_on_the_loop_in_the_callers_context(loop: LoopThread) -> None:
    """The caller's contextvars (its OpenTelemetry span) reach the RPC made on the loop."""
    def in_thread(name: str) -> tuple[str, str]:
        CALLER.set(name)
        return loop.run(_caller_and_thread())

    threads = [f"t{i}" for i in range(4)]
    results: dict[str, tuple[str, str]] = {}
    workers = [threading.Thread(target=lambda n=n: results.update({n: in_thread(n)}))
               for n in threads]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == {n: (n, "test-loop") for n in threads}


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


def test_an_async_iterable_is_iterated_from_blocking_code(loop: LoopThread) -> None:
    assert list(loop.iterate(_count(3))) == [0, 1, 2]
    assert list(loop.iterate(_count(0))) == []


def test_an_error_reaches_the_caller(loop: LoopThread) -> None:
    async def fail() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        loop.run(fail())
    assert loop.run(_caller_and_thread())[1] == "test-loop"  # the loop goes on


def test_a_blocking_call_from_the_loop_itself_is_refused(loop: LoopThread) -> None:
    async def reenter() -> None:
        loop.run(_caller_and_thread())

    with pytest.raises(RuntimeError, match="would wait for itself"):
        loop.run(reenter())


async def test_it_works_under_a_running_event_loop() -> None:
    """A blocking Client inside async code: its loop is its own, not the caller's."""
    thread = LoopThread("nested")
    try:
        assert thread.run(_caller_and_thread())[1] == "nested"
    finally:
        thread.close()
    thread.close()  # closing twice is harmless
    assert not thread.is_open


def test_the_thread_of_a_loop_nobody_refers_to_ends() -> None:
    """A Client never closed does not leave its thread behind once it is gone."""
    orphan = LoopThread("orphan-loop")
    orphan.run(_caller_and_thread())
    (thread,) = [t for t in threading.enumerate() if t.name == "orphan-loop"]
    del orphan
    gc.collect()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_leaving_an_iteration_early_closes_the_async_iterator(loop: LoopThread) -> None:
    """A `break` (or close(), or collection) closes the async generator on the loop: an SDK
    stream cancels its call there. Iterated to the end, nothing more is asked of it."""
    closed: list[str] = []

    async def items(name: str) -> AsyncIterator[int]:
        try:
            for i in range(3):
                yield i
        finally:
            closed.append(f"{name} on {threading.current_thread().name}")

    for _ in loop.iterate(items("left")):
        break
    assert closed == ["left on test-loop"]
    assert list(loop.iterate(items("finished"))) == [0, 1, 2]
    assert closed == ["left on test-loop", "finished on test-loop"]


def test_closing_while_another_thread_iterates_ends_its_iteration_cleanly(
        caplog: pytest.LogCaptureFixture) -> None:
    """(SDK review 2026-12-05: Client.close while another thread read a stream made asyncio
    log "aclose(): asynchronous generator is already running".) The reader gets
    ClientClosed, the generator is closed once (its finally runs), nothing is logged."""
    from ostinato.errors import ClientClosed

    loop = LoopThread("test-loop")
    waiting = threading.Event()
    closed: list[str] = []
    outcome: list[BaseException | None] = []

    async def items() -> AsyncIterator[int]:
        try:
            yield 0
            waiting.set()
            await asyncio.Event().wait()  # a stream waiting for its next chunk
            yield 1
        finally:
            closed.append("closed")

    def read() -> None:
        try:
            for _ in loop.iterate(items()):
                pass
            outcome.append(None)
        except BaseException as exc:  # what the reader got is the test
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert waiting.wait(30)
    with caplog.at_level("ERROR", logger="asyncio"):
        loop.close()
        reader.join(30)
    assert not reader.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ClientClosed), outcome
    assert closed == ["closed"]
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


def test_a_result_that_lands_as_a_wait_times_out_is_returned(loop: LoopThread) -> None:
    """(Review 2026-12-06: the result that completed between the timed wait's timeout and
    the check was lost, raised as the wait's TimeoutError.)"""
    import concurrent.futures

    class LandsAtTheTimeout(concurrent.futures.Future[str]):
        def result(self, timeout: float | None = None) -> str:
            if not self.done():
                self.set_result("answer")
                raise TimeoutError
            return super().result(timeout)

    assert loop._result(LandsAtTheTimeout()) == "answer"


def test_two_threads_closing_at_once_both_return() -> None:
    loop = LoopThread("test-loop")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def close() -> None:
        start.wait()
        try:
            loop.close()
        except BaseException as exc:  # what a closer got is the test
            errors.append(exc)

    closers = [threading.Thread(target=close) for _ in range(2)]
    for t in closers:
        t.start()
    for t in closers:
        t.join(30)
    assert not errors and not loop.is_open
