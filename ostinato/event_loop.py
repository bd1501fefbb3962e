"""The event loop every asyncio process of the mesh runs on (gateway, planner, workers, sim
engines, `bench live`'s load generator): uvloop where it is installed (Linux and macOS
wheels), else asyncio's own.

grpc.aio is loop-agnostic: its poller thread hands completions to the loop through a
socketpair the loop watches (`add_reader`), which uvloop implements as asyncio does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

EVENT_LOOPS = ("uvloop", "asyncio")

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


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """asyncio.run(main) on event loop `name`."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """"uvloop" or "asyncio": what the running loop is (logs, benchmark rows)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") \
        else "asyncio"
