"""The Gateway gRPC servicer: translates requests to the gateway core and its errors to
gRPC status codes (gateway/core.py holds the call path, shared with the HTTP API)."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from gateway.call_items import Delta, Granted
from gateway.core import GatewayCore, GatewayError
from gateway.program_runner import run_dag
from ostinato.rpc_closing import closer
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc

T = TypeVar("T")


async def _abort(context: grpc.aio.ServicerContext, exc: GatewayError) -> None:
    """The status, and when a refused call may be retried (trailer `retry-after-ms`); a
    failure the gateway has retried already tells a gRPC retry policy not to
    (`grpc-retry-pushback-ms` negative: gRPC's retry design, A6)."""
    trailers: tuple[tuple[str, str], ...] = () if exc.retry_after_s is None else (
        ("retry-after-ms", str(max(1, round(exc.retry_after_s * 1000)))),)
    if exc.retried:
        trailers += (("grpc-retry-pushback-ms", "-1"),)
    await context.abort(exc.code, exc.message, trailing_metadata=trailers)


async def _unary(context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except GatewayError as exc:
        await _abort(context, exc)
        raise  # unreachable: abort raises



RESEND_HEADER = "x-ostinato-resend"


def resent(metadata: Sequence[tuple[str, str]] | None) -> bool:
    """Whether a Call is the client's retry of an attempt that got no answer, so that the
    earlier attempt may have reached the planner through a gateway that then died: a gRPC
    retry policy's attempt (grpc-previous-rpc-attempts; the SDK retries a Call only before
    anything has streamed), or a client's own retry marked `x-ostinato-resend: 1`."""
    for key, value in metadata or ():
        if key == "grpc-previous-rpc-attempts" and value not in ("", "0"):
            return True
        if key == RESEND_HEADER and value.lower() in ("1", "true"):
            return True
    return False

class GatewayService(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, core: GatewayCore) -> None:
        self._core = core

    def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        return self._core.tenant(context.invocation_metadata())

    async def StartProgram(self, request, context):
        async def work() -> gateway_pb2.StartProgramResponse:
            tenant = self._tenant(context)
            program_id = await self._core.start_program(tenant, request.options)
            return gateway_pb2.StartProgramResponse(program_id=program_id, tenant=tenant)
        return await _unary(context, work)

    async def EndProgram(self, request, context):
        async def work() -> gateway_pb2.EndProgramResponse:
            summary = await self._core.end_program(self._tenant(context), request.program_id)
            return gateway_pb2.EndProgramResponse(summary=summary)
        return await _unary(context, work)

    async def CacheStats(self, request, context):
        async def work() -> gateway_pb2.CacheStatsResponse:
            tenant = self._tenant(context)
            cache = self._core.cache
            if cache is None:
                return gateway_pb2.CacheStatsResponse(enabled=False)
            # the caller's own events and entries, no other tenant's, nor those of a revoked
            # tenant of the same name (another generation)
            space = self._core.namespace(tenant)
            m = cache.metrics
            return gateway_pb2.CacheStatsResponse(
                enabled=True, redis_up=m.redis_up, counts=m.tenant_counts(space),
                index_entries=await cache.entries_of(space),
                lookup_ms_p50=m.percentile_ms(0.5, space),
                lookup_ms_p99=m.percentile_ms(0.99, space),
                server_vector_search=cache.vector_search)
        return await _unary(context, work)

    async def Call(self, request, context) -> AsyncIterator[gateway_pb2.CallChunk]:
        try:
            async for chunk in self._chunks(request, context, request.whole):
                yield chunk
        except GatewayError as exc:
            await _abort(context, exc)

    async def CallWhole(self, request, context) -> gateway_pb2.CallChunk:
        async def work() -> gateway_pb2.CallChunk:
            last = None
            async for chunk in self._chunks(request, context, whole=True):
                last = chunk
            assert last is not None  # (a run ends with its result, or raises)
            return last
        return await _unary(context, work)

    async def _chunks(self, request: gateway_pb2.CallRequest, context,
                      whole: bool) -> AsyncIterator[gateway_pb2.CallChunk]:
        """The call's chunks: deltas as they come, then the result with the text not sent
        yet; `whole`: only that last one (the text with the result, one message)."""
        tenant = self._tenant(context)
        placed = await self._core.place(tenant, request.call, request.program_id)
        if resent(context.invocation_metadata()):
            placed = dataclasses.replace(placed, resend=True)
        if whole:
            placed = dataclasses.replace(placed, whole=True)
        call_id = placed.call.call_id
        # A whole answer's text goes with its result (one message); a streamed call's
        # last text keeps a chunk of its own, as clients before `whole` read it.
        held = held_thinking = ""
        run = self._core.run(tenant, placed, self._core.timeout(context.time_remaining()))
        # a client that cancels while a chunk is sent: its call on the worker ends now
        context.add_done_callback(closer(run, contextvars.copy_context()))
        async with contextlib.aclosing(run):
            async for item in run:
                if isinstance(item, Granted):
                    continue
                if isinstance(item, Delta):
                    if whole:
                        held = "" if item.restart else held + item.text
                        held_thinking = "" if item.restart else held_thinking + item.reasoning
                        continue
                    yield gateway_pb2.CallChunk(call_id=call_id, delta=item.text,
                                                reasoning_delta=item.reasoning,
                                                restarted=item.restart)
                else:
                    yield gateway_pb2.CallChunk(call_id=call_id, delta=held, result=item,
                                                reasoning_delta=held_thinking)

    async def RunProgram(self, request, context) -> AsyncIterator[gateway_pb2.ProgramEvent]:
        try:
            tenant = self._tenant(context)
            dag = run_dag(self._core, tenant, request.options, request.nodes,
                          self._core.timeout(context.time_remaining()),
                          lambda: self._tenant(context))
            # A client that cancels stops the program at once: its nodes run as tasks of
            # their own, which nothing else would stop until this generator is collected.
            context.add_done_callback(closer(dag, contextvars.copy_context()))
            async with contextlib.aclosing(dag):
                async for event in dag:
                    yield event
        except GatewayError as exc:
            await _abort(context, exc)
