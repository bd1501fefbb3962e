"""The Python SDK, blocking: ostinato.AsyncClient driven from an event loop thread of its
own (ostinato/sdk_loop.py), so both clients share one implementation of every behaviour.

    with ostinato.Client("127.0.0.1:50051", api_key=KEY) as client:
        with client.program() as program:
            out = program.call(messages=[{"role": "user", "content": "Hi"}])
            print(out.text, out.usage, out.worker_id)
            for delta in program.stream(messages=..., parents=[out]):
                print(delta, end="")

Threads may share a Client and a Program: their calls run concurrently (a fan-out: one
thread per branch, `thread_id=` and `parents=[...]` naming the results it builds on).
Deadlines, API key, TLS and retries as AsyncClient's (ostinato/aio_client.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Unpack

from ostinato.aio_client import AsyncCallStream, AsyncClient, AsyncDagStream, AsyncProgram
from ostinato.dag import DagEvent, DagResult, Graph
from ostinato.errors import OstinatoError
from ostinato.sdk_channel import Tls
from ostinato.sdk_loop import LoopThread
from ostinato.sdk_results import CacheStats, CallOutput, ProgramSummary
from ostinato.sdk_types import CallArgs, PlacedCallArgs, ProgramArgs


class CallStream:
    """Iterates over a call's text deltas; `.result`, `.text`, `.reasoning`, `.restarts` and
    `on_restart` as AsyncCallStream's (`on_restart` is called in the iterating thread).
    Leaving the iteration before the end (`break`, the iterator closed or collected)
    cancels the call, as `cancel()` does."""

    def __init__(self, loop: LoopThread, stream: AsyncCallStream,
                 on_restart: Callable[[], None] | None) -> None:
        self._loop = loop
        self._stream = stream
        self._on_restart = on_restart

    def __iter__(self) -> Iterator[str]:
        seen = 0
        with contextlib.closing(self._loop.iterate(self._stream)) as deltas:
            for delta in deltas:
                seen = self._restarted(seen)
                yield delta
        self._restarted(seen)

    def _restarted(self, seen: int) -> int:
        for _ in range(self._stream.restarts - seen):
            if self._on_restart is not None:
                self._on_restart()
        return self._stream.restarts

    @property
    def result(self) -> CallOutput | None:
        return self._stream.result

    @property
    def text(self) -> str:
        return self._stream.text

    @property
    def reasoning(self) -> str:
        return self._stream.reasoning

    @property
    def restarts(self) -> int:
        return self._stream.restarts

    def cancel(self) -> None:
        """Stops the call: the gateway cancels it in the planner and aborts the engine request.
        Nothing to do once the client is closed (closing it ended its calls)."""
        if self._loop.is_open:
            self._loop.call(self._stream.cancel)


class DagStream:
    """Iterates over a declared program's events; `.result` gathers them (AsyncDagStream).
    Leaving the iteration before the end cancels the program, as `cancel()` does."""

    def __init__(self, loop: LoopThread, stream: AsyncDagStream) -> None:
        self._loop = loop
        self._stream = stream

    def __iter__(self) -> Iterator[DagEvent]:
        return self._loop.iterate(self._stream)

    @property
    def result(self) -> DagResult:
        return self._stream.result

    def cancel(self) -> None:
        if self._loop.is_open:  # (closing the client ended the run)
            self._loop.call(self._stream.cancel)


class Program:
    """An open interactive program (AsyncProgram's operations, blocking)."""

    def __init__(self, loop: LoopThread, program: AsyncProgram) -> None:
        self._loop = loop
        self._program = program

    @property
    def program_id(self) -> str:
        return self._program.program_id

    @property
    def summary(self) -> ProgramSummary | None:
        return self._program.summary

    def stream(self, *, call_id: str | None = None, thread_id: str | None = None,
               parents: str | CallOutput | Sequence[str | CallOutput] | None = None,
               on_restart: Callable[[], None] | None = None, whole: bool = False,
               **args: Unpack[CallArgs]) -> CallStream:
        """See AsyncProgram.stream."""
        return CallStream(self._loop, self._loop.call(functools.partial(
            self._program.stream, call_id=call_id, thread_id=thread_id, parents=parents,
            whole=whole, **args)), on_restart)

    def call(self, **args: Unpack[PlacedCallArgs]) -> CallOutput:
        """Runs a call to completion; see AsyncProgram.call."""
        return self._loop.run(self._program.call(**args))

    def end(self) -> ProgramSummary:
        return self._loop.run(self._program.end())

    def __enter__(self) -> Program:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._loop.run(self._program.leave(False))
            return
        with contextlib.suppress(OstinatoError):  # (the client closed meanwhile: the body's
            self._loop.run(self._program.leave(True))  # error is the one raised)


class Client:
    """The blocking SDK: programs (`program()`), declared DAGs (`run`, `run_stream`) and
    cache statistics over the gateway's gRPC API, on a loop thread of its own; AsyncClient
    is the same for asyncio code."""

    def __init__(self, address: str = "127.0.0.1:50051", api_key: str | None = None,
                 timeout_s: float | None = None, *, tls: bool | Tls = False) -> None:
        """As AsyncClient's."""
        self._loop = LoopThread(f"ostinato-client-{address}")
        try:
            self._client = self._loop.call(lambda: AsyncClient(address, api_key, timeout_s, tls=tls))
        except BaseException:
            self._loop.close()
            raise

    def program(self, *, restart_on_failure: bool = False,
                **options: Unpack[ProgramArgs]) -> Program:
        """See AsyncClient.program."""
        return Program(self._loop, self._loop.run(
            self._client._open_program(restart_on_failure, options)))

    def run_stream(self, graph: Graph, **options: Unpack[ProgramArgs]) -> DagStream:
        """See AsyncClient.run_stream."""
        return DagStream(self._loop, self._loop.call(functools.partial(
            self._client.run_stream, graph, **options)))

    def run(self, graph: Graph, **options: Unpack[ProgramArgs]) -> DagResult:
        """Runs a declared DAG (ostinato.dag) to its end; see AsyncClient.run_stream."""
        return self._loop.run(self._client.run(graph, **options))

    def cache_stats(self) -> CacheStats:
        """The answer caches' counters of the gateway that answers."""
        return self._loop.run(self._client.cache_stats())

    def close(self) -> None:
        """Closes the client; what other threads wait for on it ends with ClientClosed."""
        self._loop.close(self._client.close)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
