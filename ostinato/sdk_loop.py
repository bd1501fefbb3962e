"""An asyncio event loop on a thread of its own, driven from blocking code: how ostinato.Client
runs ostinato.AsyncClient.

Coroutines run on the loop in the calling thread's context (contextvars: the caller's
OpenTelemetry span goes into the RPC's metadata). Any number of threads may wait on the
loop at once: their RPCs run concurrently on the one channel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Generator
from typing import Any, TypeVar

import grpc

from ostinato.errors import ClientClosed

T = TypeVar("T")
# how often a blocking wait checks that the loop still runs (its result wakes it at once)
_LOOP_CHECK_S = 1.0


async def _called(fn: Callable[[], T]) -> T:
    return fn()


async def _aclose(items: AsyncIterator[Any]) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


async def _next(items: AsyncIterator[T]) -> list[T]:
    """The next item, or none at the end."""
    try:
        return [await anext(items)]
    except StopAsyncIteration:
        return []


def _closed(waited: bool = False) -> ClientClosed:
    return ClientClosed(grpc.StatusCode.CANCELLED,
                        "the client was closed while this call waited" if waited
                        else "the client is closed: open another")


async def _end_the_others() -> None:
    """Cancels every other task on the loop (other threads' waits: an RPC, a stream's next
    chunk) and waits for them to end."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)


class LoopThread:
    """The loop's thread ends with `close()`, or once nothing refers to this object (a Client
    never closed, and every Program and stream of it, gone)."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_serve, args=(self._loop,), name=name, daemon=True)
        self._thread.start()
        self._closing = False
        self._close_lock = threading.Lock()  # one close at a time; the others wait for it
        weakref.finalize(self, _stop, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the loop and waits for its result (an interrupted wait cancels it)."""
        if self._closing or not self.is_open or self._loop.is_closed():
            coro.close()  # (never awaited: no warning about it)
            raise _closed()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking SDK call from the SDK's own event loop (a callback "
                               "of the asyncio SDK?) would wait for itself: use AsyncClient")
        future = self._submit(coro)
        try:
            return self._result(future)
        except concurrent.futures.CancelledError:
            if self._closing:  # another thread closed the client while this one waited
                raise _closed(waited=True) from None
            raise
        except BaseException:
            future.cancel()
            raise

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop closed since the caller looked
            coro.close()
            if self._loop.is_closed():
                raise _closed() from None
            raise

    def _result(self, future: concurrent.futures.Future[T]) -> T:
        """The future's result; ClientClosed if the loop ends first (a wait that `close`, on
        another thread, began to end just before this one was scheduled)."""
        while True:
            try:
                return future.result(timeout=_LOOP_CHECK_S)
            except TimeoutError:
                if future.done():  # done meanwhile, or the coroutine's own TimeoutError
                    return future.result()
                if not self.is_open:
                    raise _closed(waited=True) from None

    def call(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on the loop (what must be made there: channels, RPC objects)."""
        return self.run(_called(fn))

    def iterate(self, items: AsyncIterable[T]) -> Generator[T, None, None]:
        """The items of an async iterable, each awaited on the loop. Closing this generator
        before the end (a `break` out of a `for` over it, `close()`, or its garbage
        collection) closes the async iterator (`aclose()`: an SDK stream cancels its call)."""
        iterator = aiter(items)
        while True:
            item = self.run(_next(iterator))
            if not item:
                return
            try:
                yield item[0]
            except BaseException:  # GeneratorExit: closed; or an exception thrown in
                self._close(iterator)
                raise

    def _close(self, iterator: AsyncIterator[Any]) -> None:
        """Closes `iterator` on the loop: waited for, unless this is the loop's own thread (a
        generator collected there) or the loop has ended (its async generators closed)."""
        if not self.is_open or self._loop.is_closed() or self._closing:
            return  # (closing: `close` finishes the async generators)
        future = self._submit(_aclose(iterator))
        if threading.current_thread() is not self._thread:
            try:
                self._result(future)
            except (ClientClosed, concurrent.futures.CancelledError):
                if not self._closing:  # (closing: its close is `close`'s)
                    raise

    @property
    def is_open(self) -> bool:
        return self._thread.is_alive()

    def close(self, last: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Ends what other threads wait for on the loop (they get ClientClosed), then runs
        `last()` (the client's channel closed: after, so that no wait ends with what a closed
        channel gives it, a cancelled RPC or a refused one), finishes open async
        generators, stops the loop and joins its thread."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("the SDK's client closed from its own event loop (a callback "
                               "of the asyncio SDK?) would wait for itself: use AsyncClient")
        with self._close_lock:
            if not self.is_open:
                return
            self._closing = True
            # (the others a second time: a wait scheduled as the first pass began)
            for ending in (_end_the_others, last, self._loop.shutdown_asyncgens,
                           _end_the_others):
                if ending is not None:
                    self._result(self._submit(ending()))
            _stop(self._loop)
            self._thread.join()
