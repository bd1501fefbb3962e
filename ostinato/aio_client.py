"""The Python SDK, asyncio: the one implementation (ostinato.Client runs this one on an event
loop thread of its own).

    async with ostinato.AsyncClient("127.0.0.1:50051", api_key=KEY) as client:
        async with client.program() as program:
            root = await program.call(messages=[("user", "Plan a trip")])
            a, b = await asyncio.gather(
                program.call(messages=..., thread_id="a", parents=[root]),
                program.call(messages=..., thread_id="b", parents=[root]))

Deadlines (`timeout_s`), the API key, TLS (`tls=True` or ostinato.Tls) and the retry policy
(operations wait for the gateway; idempotent ones are retried on UNAVAILABLE with backoff:
sdk_types.SERVICE_CONFIG) are the channel's and the client's; failed RPCs raise the
exceptions of ostinato/errors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Sequence,
)
from contextlib import aclosing
from typing import Any, TypeVar, Unpack

import grpc

from ostinato.dag import DagEvent, DagResult, Graph, parse_event
from ostinato.errors import Cancelled, OstinatoError
from ostinato.sdk_channel import GatewayRpcs, Tls, open_channel
from ostinato.sdk_results import (
    CacheStats,
    CallOutput,
    ProgramSummary,
    parse_cache_stats,
    parse_call_output,
    parse_summary,
)
from ostinato.sdk_types import (
    CallArgs,
    ProgramArgs,
    ThreadTracker,
    call_spec,
    new_id,
    positive_seconds,
    program_options,
)
from ostinato.v1 import gateway_pb2

R = TypeVar("R")
END_AFTER_ERROR_S = 5.0  # the longest a program's end waits after its `with` body raised


async def _unary(response: Awaitable[R], rpcs: GatewayRpcs) -> R:
    try:
        return await response
    except grpc.RpcError as exc:
        raise rpcs.error(exc) from None


async def _stream(call: grpc.aio.UnaryStreamCall[Any, R],
                  rpcs: GatewayRpcs) -> AsyncGenerator[R, None]:
    """The call's responses. Left before its end (the iteration closed: a `break` out of an
    `async for` over a stream, its iterator dropped or closed; or its task cancelled), the
    call is cancelled, as `cancel()` does: nobody reads it any more."""
    try:
        async for response in call:
            yield response
    except grpc.RpcError as exc:
        raise rpcs.error(exc) from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if call.cancelled() and (task is None or not task.cancelling()):  # cancel(), not the task
            raise Cancelled(grpc.StatusCode.CANCELLED, "the call was cancelled") from None
        raise
    finally:
        if not call.done():
            call.cancel()


def _cancel_when_dropped(stream: object, call: grpc.aio.Call) -> None:
    """Once `stream` is collected with its call still running (never iterated: the RPC
    started when the stream was made), the call is cancelled on its loop (SDK review
    2026-12-05 F5: it ran to its end, and took its tenant's quota)."""
    weakref.finalize(stream, _cancel_on, asyncio.get_running_loop(), call)


def _cancel_on(loop: asyncio.AbstractEventLoop, call: grpc.aio.Call) -> None:
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile)
            loop.call_soon_threadsafe(lambda: call.done() or call.cancel())


class AsyncCallStream:
    """Iterates over a call's text deltas; `.result` holds the CallOutput once it ends.

    A call with `restart_on_failure` whose worker failed after streaming starts over: the
    deltas already yielded are void, `on_restart` is called before the new answer's first
    delta, and `restarts` counts how often that happened. `text` is the answer so far;
    `reasoning` a reasoning model's thinking so far (it comes before the answer's deltas)."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[gateway_pb2.CallRequest, gateway_pb2.CallChunk],
                 rpcs: GatewayRpcs, on_done: Callable[[CallOutput], None],
                 on_restart: Callable[[], None] | None = None) -> None:
        self._call, self._rpcs = call, rpcs
        _cancel_when_dropped(self, call)
        self._on_done = on_done
        self._on_restart = on_restart
        self.result: CallOutput | None = None
        self.restarts = 0
        self._text: list[str] = []  # (pieces: one long answer is not copied per delta)
        self._reasoning: list[str] = []

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        """The thinking so far."""
        return "".join(self._reasoning)

    async def __aiter__(self) -> AsyncIterator[str]:
        """Leaving it before the end (`break`) cancels the call, as `cancel()` does."""
        async with aclosing(_stream(self._call, self._rpcs)) as chunks:
            async for chunk in chunks:
                if chunk.restarted:
                    self.restarts += 1
                    self._text, self._reasoning = [], []
                    if self._on_restart is not None:
                        self._on_restart()
                if chunk.reasoning_delta:
                    self._reasoning.append(chunk.reasoning_delta)
                if chunk.delta:  # (the last text may come with the result)
                    self._text.append(chunk.delta)
                    yield chunk.delta
                if chunk.HasField("result"):
                    self.result = parse_call_output(chunk.result)
                    self._on_done(self.result)
        if self.result is None:
            raise OstinatoError(grpc.StatusCode.INTERNAL, "stream ended without a result")

    def cancel(self) -> None:
        """Stops the call: the gateway cancels it in the planner and aborts the engine request."""
        self._call.cancel()


class AsyncDagStream:
    """Iterates over a declared program's events (ostinato.dag); `.result` gathers them."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[gateway_pb2.RunProgramRequest,
                                                      gateway_pb2.ProgramEvent],
                 rpcs: GatewayRpcs, program_id: str = "") -> None:
        """`program_id`: the one the request names (the SDK names it when the caller did
        not): known to `result` before any event, so a run that fails before its first
        still says which program it was."""
        self._call, self._rpcs = call, rpcs
        _cancel_when_dropped(self, call)
        self.result = DagResult(program_id=program_id)

    async def __aiter__(self) -> AsyncIterator[DagEvent]:
        """Leaving it before the end (`break`) cancels the program, as `cancel()` does."""
        async with aclosing(_stream(self._call, self._rpcs)) as events:
            async for event in events:
                parsed = parse_event(event)
                self.result.record(event.program_id, parsed)
                yield parsed
        if self.result.summary is None:
            raise OstinatoError(grpc.StatusCode.INTERNAL, "program ended without a summary")

    def cancel(self) -> None:
        self._call.cancel()


class AsyncProgram:
    """An open interactive program; `end()` (or leaving `async with`) closes it."""

    def __init__(self, rpcs: GatewayRpcs, program_id: str, restart_on_failure: bool) -> None:
        self._rpcs = rpcs
        self.program_id = program_id
        self._restart_on_failure = restart_on_failure
        self._threads = ThreadTracker()
        self.summary: ProgramSummary | None = None

    def stream(self, *, call_id: str | None = None, thread_id: str | None = None,
               parents: str | CallOutput | Sequence[str | CallOutput] | None = None,
               on_restart: Callable[[], None] | None = None, whole: bool = False,
               **args: Unpack[CallArgs]) -> AsyncCallStream:
        """Starts a call and streams its text. `parents`: the calls it depends on (results
        or call ids), else the previous call of its thread (`thread_id`, default "main").
        `call_id`: named by the SDK when None, so that a retried Call is the same call.
        `restart_on_failure` (default: the program's) lets a call whose worker fails after
        streaming start over (see AsyncCallStream). `whole`: the text comes at the end only,
        in one message with the result (as `call` gets it). Leaving the iteration before
        its end (`break`, or its iterator closed or dropped) cancels the call."""
        request = self._request(call_id, thread_id, parents, whole, args)
        call = self._rpcs.call(request, metadata=self._rpcs.metadata(), timeout=self._rpcs.timeout_s)
        return AsyncCallStream(call, self._rpcs,
                               lambda out: self._threads.record(thread_id, out.call_id), on_restart)

    async def call(self, *, call_id: str | None = None, thread_id: str | None = None,
                   parents: str | CallOutput | Sequence[str | CallOutput] | None = None,
                   **args: Unpack[CallArgs]) -> CallOutput:
        """Runs a call to completion; the arguments as `stream`'s but `on_restart` and
        `whole`. The answer comes whole, in one message: the unary CallWhole (one response
        and its status in one write), or from a gateway older than it, a Call stream."""
        request = self._request(call_id, thread_id, parents, True, args)
        record = functools.partial(self._threads.record, thread_id)
        if self._rpcs.call_whole_served:
            try:
                chunk = await self._rpcs.call_whole(request, metadata=self._rpcs.metadata(),
                                                    timeout=self._rpcs.timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise self._rpcs.error(exc) from None
                self._rpcs.call_whole_served = False  # (refused unread: the same call id)
            else:
                if not chunk.HasField("result"):
                    raise OstinatoError(grpc.StatusCode.INTERNAL, "the answer came without a result")
                out = parse_call_output(chunk.result)
                record(out.call_id)
                return out
        stream = AsyncCallStream(self._rpcs.call(request, metadata=self._rpcs.metadata(),
                                                 timeout=self._rpcs.timeout_s),
                                 self._rpcs, lambda out: record(out.call_id))
        async for _ in stream:
            pass
        assert stream.result is not None
        return stream.result

    def _request(self, call_id: str | None, thread_id: str | None,
                 parents: str | CallOutput | Sequence[str | CallOutput] | None,
                 whole: bool, args: CallArgs) -> gateway_pb2.CallRequest:
        args.setdefault("restart_on_failure", self._restart_on_failure)
        call_id = call_id or new_id()
        spec = call_spec(call_id=call_id, thread_id=thread_id,
                         parents=self._threads.parents(thread_id, parents, call_id), **args)
        return gateway_pb2.CallRequest(program_id=self.program_id, call=spec, whole=whole)

    async def end(self) -> ProgramSummary:
        """Closes the program (once; later calls return the same summary)."""
        return await self._end(self._rpcs.unary_timeout_s)

    async def _end(self, timeout_s: float, wait_for_ready: bool | None = None) -> ProgramSummary:
        if self.summary is None:
            resp = await _unary(self._rpcs.end_program(
                gateway_pb2.EndProgramRequest(program_id=self.program_id),
                metadata=self._rpcs.metadata(), timeout=timeout_s,
                wait_for_ready=wait_for_ready), self._rpcs)
            self.summary = parse_summary(resp.summary)
        return self.summary

    async def leave(self, failed: bool) -> None:
        """Leaving `with`/`async with`: ends the program. After the body raised (`failed`),
        the end is best effort: at once where no gateway is connected, within
        END_AFTER_ERROR_S else, and its own error never replaces the body's (fault review
        2026-12-06: a stream cut by a gateway gone surfaced 60 s later as EndProgram's
        UNAVAILABLE). A program not ended so is expired by the planner once idle."""
        if not failed:
            await self.end()
            return
        with contextlib.suppress(OstinatoError):
            await self._end(min(self._rpcs.unary_timeout_s, END_AFTER_ERROR_S),
                            wait_for_ready=False)

    async def __aenter__(self) -> AsyncProgram:
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.leave(exc_type is not None)


class ProgramOpening(Awaitable[AsyncProgram]):
    """AsyncClient.program's answer: awaited, the program; entered (`async with`), the
    program, ended on leaving, as aiohttp's requests are both."""

    def __init__(self, opening: Coroutine[Any, Any, AsyncProgram]) -> None:
        self._opening = opening
        self._program: AsyncProgram | None = None

    def __await__(self) -> Generator[Any, None, AsyncProgram]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncProgram:
        self._program = await self._opening
        return self._program

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        if self._program is not None:
            await self._program.leave(exc_type is not None)


class AsyncClient:
    """The asyncio SDK: programs (`program()`), declared DAGs (`run`, `run_stream`) and
    cache statistics over the gateway's gRPC API; Client is the same for blocking code."""

    def __init__(self, address: str = "127.0.0.1:50051", api_key: str | None = None,
                 timeout_s: float | None = None, *, tls: bool | Tls = False) -> None:
        """`timeout_s`: every operation's deadline (None: calls have none, other operations
        sdk_types.UNARY_DEADLINE_S). `tls`: True for TLS with the system's CAs, or a Tls.
        Made inside a running event loop (an async function), the one it is used on."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # gRPC would bind its channel to a loop of its own and the first RPC, awaited on
            # asyncio.run's, fail with "attached to a different loop"
            raise RuntimeError("ostinato.AsyncClient must be made inside the event loop that "
                               "uses it (in an async function: `async with "
                               "ostinato.AsyncClient(...)`); from synchronous code use "
                               "ostinato.Client") from None
        if timeout_s is not None:
            timeout_s = positive_seconds("timeout_s", timeout_s)
        self._channel = open_channel(address, tls)
        self._rpcs = GatewayRpcs(self._channel, api_key, timeout_s, address)

    def program(self, *, restart_on_failure: bool = False,
                **options: Unpack[ProgramArgs]) -> ProgramOpening:
        """Opens a program (named here when `program_id` is None, so that a retry opens the
        same one). `restart_on_failure`: its calls' default (see AsyncProgram.stream).
        `await client.program()` gives it; `async with client.program() as program:` ends
        it on leaving."""
        return ProgramOpening(self._open_program(restart_on_failure, options))

    async def _open_program(self, restart_on_failure: bool,
                            options: ProgramArgs) -> AsyncProgram:
        resp = await _unary(self._rpcs.start_program(
            gateway_pb2.StartProgramRequest(options=program_options(**options)),
            metadata=self._rpcs.metadata(), timeout=self._rpcs.unary_timeout_s), self._rpcs)
        return AsyncProgram(self._rpcs, resp.program_id, restart_on_failure)

    def run_stream(self, graph: Graph, **options: Unpack[ProgramArgs]) -> AsyncDagStream:
        """Runs a declared DAG server-side and streams its events. Raises InvalidDag before
        sending when the graph would be refused. Not retried (a second RunProgram would
        run the DAG again)."""
        request = graph.request(program_options(**options))
        return AsyncDagStream(self._rpcs.run_program(request, metadata=self._rpcs.metadata(),
                                                     timeout=self._rpcs.timeout_s), self._rpcs,
                              request.options.program_id)

    async def run(self, graph: Graph, **options: Unpack[ProgramArgs]) -> DagResult:
        """Runs a declared DAG to its end (see run_stream)."""
        s = self.run_stream(graph, **options)
        async for _ in s:
            pass
        return s.result

    async def cache_stats(self) -> CacheStats:
        """The answer caches' counters of the gateway that answers."""
        return parse_cache_stats(await _unary(self._rpcs.cache_stats(
            gateway_pb2.CacheStatsRequest(), metadata=self._rpcs.metadata(),
            timeout=self._rpcs.unary_timeout_s), self._rpcs))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
