"""The event loop every asyncio process of the mesh runs on (gateway, planner, workers, sim
engines, `bench live`'s load generator): uvloop where it is installed (Linux and macOS
wheels), else asyncio's own.

grpc.aio is loop-agnostic: its poller thread hands completions to the loop through a
socketpair the loop watches (`add_reader`), which uvloop implements as asyncio does.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

EVENT_LOOPS = ("uvloop", "asyncio")
# How long a service may take, once its main coroutine has ended, to cancel the tasks left,
# close the loop and exit (its last spans get 2 s, tracing/setup.py). Past it the process
# writes every thread's stack to stderr and exits 1, rather than hang until it is killed.
SERVICE_EXIT_S = 15.0

T = TypeVar("T")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of loop `name` for asyncio.Runner; None means asyncio's default. uvloop
    falls back to asyncio's loop where the package is not installed."""
    if name not in EVENT_LOOPS:
        raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, got {name!r}")
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None
        return uvloop.new_event_loop
    return None


def run(main: Coroutine[Any, Any, T], name: str, *, exit_within_s: float | None = None) -> T:
    """asyncio.run(main) on event loop `name`. With `exit_within_s`: once `main` ends, the
    process has that long to exit (a task that will not end: a library swallowed its
    cancellation), else its threads' stacks go to stderr and it exits 1."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        try:
            return runner.run(main)
        finally:
            if exit_within_s is not None:
                faulthandler.dump_traceback_later(exit_within_s, exit=True)


def running_loop_name() -> str:
    """"uvloop" or "asyncio": what the running loop is (logs, benchmark rows)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") \
        else "asyncio"


async def in_daemon_thread(fn: Callable[[], T], name: str) -> T:
    """`fn()` run in a thread of its own that does not hold the process: asyncio.to_thread's
    executor is waited for when the loop closes, so a stop (Ctrl-C) during a long load
    (the embedding model: seconds, over SERVICE_EXIT_S on a busy machine) would wait the
    load out and then be killed by the exit watchdog. Cancelled, this returns at once; the
    thread's result is dropped when it ends."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:  # (handed to the awaiting task)
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=body, name=name, daemon=True).start()
    return await done
