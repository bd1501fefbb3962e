"""The gateway's admissions: Admit over one long-lived AdmitStream to the planner.

One stream carries every admission (a message costs far less than an RPC, at both ends);
`Admissions.Admit(request, timeout=...)` behaves as the unary stub method it replaces:
the Grant, or grpc.aio.AioRpcError with Admit's status (DEADLINE_EXCEEDED at `timeout`).
A caller that gives up (cancelled, or its deadline passed) has its admission cancelled at
the planner, as a cancelled Admit. When the stream ends (the planner restarted, or
another took over) its unanswered admissions fail UNAVAILABLE, which the callers' retries
admit again (Admit is idempotent), over a new stream. Under load, the admissions queued
meanwhile go as one message, and so do the planner's answers (carriers:
ostinato/stream_tasks.py), with a planner that reads them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from gateway.trace_context import trace_metadata
from ostinato.stream_tasks import BATCHES, carrier, drained, has_batches, unbatched
from ostinato.v1 import planner_pb2, planner_pb2_grpc
from planner.admit_stream import FINAL

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def rpc_error(code: grpc.StatusCode, details: str, final: bool = False) -> grpc.aio.AioRpcError:
    """As a unary Admit fails (so retries and error mapping treat both alike)."""
    trailers = grpc.aio.Metadata((FINAL, "1")) if final else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)


@dataclass
class _Stream:
    call: grpc.aio.StreamStreamCall
    outbox: asyncio.Queue[planner_pb2.AdmitStreamRequest | None]
    waiting: dict[int, asyncio.Future[planner_pb2.Grant]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    batches: bool = False  # the planner reads carriers (said in its initial metadata)


class Admissions:
    def __init__(self, planner: planner_pb2_grpc.PlannerStub) -> None:
        self._planner = planner
        self._stream: _Stream | None = None
        self._ids = itertools.count(1)

    async def Admit(self, request: planner_pb2.AdmitRequest,
                    timeout: float | None = None) -> planner_pb2.Grant:
        stream = self._stream or self._open()
        admission = next(self._ids)
        answer: asyncio.Future[planner_pb2.Grant] = asyncio.get_running_loop().create_future()
        stream.waiting[admission] = answer
        stream.outbox.put_nowait(planner_pb2.AdmitStreamRequest(
            id=admission, admit=request, timeout_s=timeout or 0.0,
            trace_context=dict(trace_metadata())))
        try:
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            if stream.waiting.pop(admission, None) is not None and self._stream is stream:
                # given up before an answer: the planner drops it (or frees its worker)
                stream.outbox.put_nowait(planner_pb2.AdmitStreamRequest(id=admission,
                                                                        cancel=True))

    def _open(self) -> _Stream:
        outbox: asyncio.Queue[planner_pb2.AdmitStreamRequest | None] = asyncio.Queue()

        async def requests() -> AsyncIterator[planner_pb2.AdmitStreamRequest]:
            async for msgs in drained(outbox, lambda: stream.batches,
                                        planner_pb2.AdmitStreamRequest.ByteSize):
                yield carrier(planner_pb2.AdmitStreamRequest, msgs)

        stream = _Stream(self._planner.AdmitStream(requests(), metadata=((BATCHES, "1"),)),
                         outbox)
        stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
        self._stream = stream
        return stream

    async def _read(self, stream: _Stream) -> None:
        code, details = grpc.StatusCode.UNAVAILABLE, "the planner ended the admission stream"
        try:
            stream.batches = has_batches(await stream.call.initial_metadata())
            async for received in stream.call:
                for reply in unbatched(received):
                    self._answer(stream, reply)
        except grpc.aio.AioRpcError as exc:
            details = f"admission stream: {exc.code().name}: {exc.details()}"
        finally:
            if self._stream is stream:
                self._stream = None
            stream.call.cancel()
            stream.outbox.put_nowait(None)  # its request iterator ends (grpc's task with it)
            for answer in stream.waiting.values():
                if not answer.done():
                    answer.set_exception(rpc_error(code, details))
            stream.waiting.clear()

    @staticmethod
    def _answer(stream: _Stream, reply: planner_pb2.AdmitStreamResponse) -> None:
        answer = stream.waiting.pop(reply.id, None)
        if answer is None or answer.done():
            return  # its caller gave up
        if reply.status:
            answer.set_exception(rpc_error(_CODES.get(reply.status, grpc.StatusCode.UNKNOWN),
                                           reply.details, reply.final))
        else:
            answer.set_result(reply.grant)

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.call.cancel()
            if stream.reader is not None:
                await asyncio.gather(stream.reader, return_exceptions=True)
