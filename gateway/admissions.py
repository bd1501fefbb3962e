"""The gateway's admissions: Admit over one long-lived AdmitStream to the planner.

One stream carries every admission (a message costs far less than an RPC, at both ends);
`Admissions.Admit(request, timeout=...)` behaves as the unary stub method it replaces:
the Grant, or grpc.aio.AioRpcError with Admit's status (DEADLINE_EXCEEDED at `timeout`).
A caller that gives up (cancelled, or its deadline passed) has its admission cancelled at
the planner, as a cancelled Admit. When the stream ends (the planner restarted, or
another took over) its unanswered admissions fail UNAVAILABLE, which the callers' retries
admit again (Admit is idempotent), over a new stream.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from gateway.trace_context import trace_metadata
from ostinato.v1 import planner_pb2, planner_pb2_grpc

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """As a unary call fails (so retries and error mapping treat both alike)."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@dataclass
class _Stream:
    call: grpc.aio.StreamStreamCall
    outbox: asyncio.Queue[planner_pb2.AdmitStreamRequest]
    waiting: dict[int, asyncio.Future[planner_pb2.Grant]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


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
        outbox: asyncio.Queue[planner_pb2.AdmitStreamRequest] = asyncio.Queue()

        async def requests() -> AsyncIterator[planner_pb2.AdmitStreamRequest]:
            while True:
                yield await outbox.get()

        stream = _Stream(self._planner.AdmitStream(requests()), outbox)
        stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
        self._stream = stream
        return stream

    async def _read(self, stream: _Stream) -> None:
        code, details = grpc.StatusCode.UNAVAILABLE, "the planner ended the admission stream"
        try:
            async for reply in stream.call:
                answer = stream.waiting.pop(reply.id, None)
                if answer is None or answer.done():
                    continue  # its caller gave up
                if reply.status:
                    answer.set_exception(rpc_error(_CODES.get(reply.status,
                                                              grpc.StatusCode.UNKNOWN),
                                                   reply.details))
                else:
                    answer.set_result(reply.grant)
        except grpc.aio.AioRpcError as exc:
            details = f"admission stream: {exc.code().name}: {exc.details()}"
        finally:
            if self._stream is stream:
                self._stream = None
            stream.call.cancel()
            for answer in stream.waiting.values():
                if not answer.done():
                    answer.set_exception(rpc_error(code, details))
            stream.waiting.clear()

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.call.cancel()
            if stream.reader is not None:
                await asyncio.gather(stream.reader, return_exceptions=True)
