"""One long-lived gRPC channel per worker address, opened on first use, and on it one
long-lived GenerateStream carrying every call the gateway runs there.

A worker that died and came back on its address is dialled again within a couple of
seconds (gRPC's reconnect backoff, 1 s growing to 120 s by default, capped here); while
its channel is down, a generation fails at once (UNAVAILABLE) and the call is run
elsewhere. One stream for many calls: a message costs far less than an RPC at both ends.
`generate` behaves as the Generate RPC it replaces: the call's chunks, the one with the
result last, or grpc.aio.AioRpcError with Generate's status (DEADLINE_EXCEEDED at its
timeout). A caller that stops reading before the result has its generation cancelled at
the worker, as a cancelled Generate. When the stream ends (the worker died), the calls
still running on it fail UNAVAILABLE, and the next call opens a new one. Under load, the
generations queued meanwhile go as one message, and so do the worker's chunks (carriers:
ostinato/stream_tasks.py), with a worker that reads them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import grpc

from gateway.admissions import rpc_error
from gateway.trace_context import trace_metadata
from ostinato.stream_tasks import BATCHES, carrier, drained, has_batches, unbatched
from ostinato.v1 import worker_pb2, worker_pb2_grpc

CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000),
                   # a worker that stops answering without closing its connection (a
                   # stopped process, a host or path gone silent) breaks the stream within
                   # about 15 s, and the calls on it that have streamed nothing run again
                   # elsewhere; without pings they waited for their deadline (workers
                   # review 2026-12-05 F2). The servers take pings this often
                   # (ostinato/serving.py).
                   ("grpc.keepalive_time_ms", 10_000),
                   ("grpc.keepalive_timeout_ms", 5_000),
                   # what gRPC Core (1.85) gives an unanswered ping, where keepalive_timeout_ms
                   # is not (default 60 s): planner/ha_channel.py
                   ("grpc.http2.ping_timeout_ms", 5_000),
                   ("grpc.http2.max_pings_without_data", 0),
                   # a result with logprobs can pass gRPC's default 4 MiB: as the servers take
                   ("grpc.max_receive_message_length", 64 * 1024 * 1024))
_CODES = {code.value[0]: code for code in grpc.StatusCode}

Item = worker_pb2.GenerateChunk | grpc.aio.AioRpcError


@dataclass
class _Stream:
    call: grpc.aio.StreamStreamCall
    outbox: asyncio.Queue[worker_pb2.GenerateStreamRequest | None]
    waiting: dict[int, asyncio.Queue[Item]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    batches: bool = False  # the worker reads carriers (said in its initial metadata)


class WorkerChannels:
    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, worker_pb2_grpc.WorkerStub] = {}
        self._streams: dict[str, _Stream] = {}
        self._ids = itertools.count(1)

    def stub(self, address: str) -> worker_pb2_grpc.WorkerStub:
        stub = self._stubs.get(address)
        if stub is None:
            # no client interceptors: the caller passes the trace context
            # (gateway/trace_context.py)
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = worker_pb2_grpc.WorkerStub(channel)
        return stub

    async def generate(self, address: str, request: worker_pb2.GenerateRequest,
                       timeout_s: float) -> AsyncGenerator[worker_pb2.GenerateChunk, None]:
        """The call's chunks from the worker at `address`, over its stream."""
        stream = self._streams.get(address) or self._open(address)
        generation = next(self._ids)
        items: asyncio.Queue[Item] = asyncio.Queue()
        stream.waiting[generation] = items
        stream.outbox.put_nowait(worker_pb2.GenerateStreamRequest(
            id=generation, request=request, timeout_s=timeout_s,
            trace_context=dict(trace_metadata())))
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):  # around the wait only
                        item = await items.get()
                except TimeoutError:
                    raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
                if isinstance(item, grpc.aio.AioRpcError):
                    raise item
                yield item
                if item.HasField("result"):
                    return
        finally:
            if stream.waiting.pop(generation, None) is not None \
                    and self._streams.get(address) is stream:
                # stopped before its end: the worker stops it (engine request aborted)
                stream.outbox.put_nowait(worker_pb2.GenerateStreamRequest(id=generation,
                                                                          cancel=True))

    def _open(self, address: str) -> _Stream:
        outbox: asyncio.Queue[worker_pb2.GenerateStreamRequest | None] = asyncio.Queue()

        async def requests() -> AsyncIterator[worker_pb2.GenerateStreamRequest]:
            async for msgs in drained(outbox, lambda: stream.batches,
                                        worker_pb2.GenerateStreamRequest.ByteSize):
                yield carrier(worker_pb2.GenerateStreamRequest, msgs)

        stream = _Stream(self.stub(address).GenerateStream(requests(),
                                                           metadata=((BATCHES, "1"),)), outbox)
        stream.reader = asyncio.get_running_loop().create_task(self._read(address, stream))
        self._streams[address] = stream
        return stream

    async def _read(self, address: str, stream: _Stream) -> None:
        details = "the worker ended the generation stream"
        try:
            stream.batches = has_batches(await stream.call.initial_metadata())
            async for received in stream.call:
                for reply in unbatched(received):
                    self._deliver(stream, reply)
        except grpc.aio.AioRpcError as exc:
            details = f"generation stream: {exc.code().name}: {exc.details()}"
        finally:
            if self._streams.get(address) is stream:
                del self._streams[address]
            stream.call.cancel()
            stream.outbox.put_nowait(None)  # its request iterator ends (grpc's task with it)
            for items in stream.waiting.values():  # the worker (or its connection) died
                items.put_nowait(rpc_error(grpc.StatusCode.UNAVAILABLE, details))
            stream.waiting.clear()

    @staticmethod
    def _deliver(stream: _Stream, reply: worker_pb2.GenerateStreamChunk) -> None:
        items = stream.waiting.get(reply.id)
        if items is None:
            return  # its caller stopped reading
        if reply.HasField("chunk"):
            if reply.chunk.HasField("result"):
                del stream.waiting[reply.id]  # its last message
            items.put_nowait(reply.chunk)
        elif reply.end:
            del stream.waiting[reply.id]
            items.put_nowait(rpc_error(_CODES.get(reply.status, grpc.StatusCode.UNKNOWN),
                                       reply.details))

    async def close(self) -> None:
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.call.cancel()
        await asyncio.gather(*(s.reader for s in streams if s.reader is not None),
                             return_exceptions=True)
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
