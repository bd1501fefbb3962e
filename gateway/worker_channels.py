"""One long-lived gRPC channel per worker address, opened on first use.

A worker that died and came back on its address is dialled again within a couple of
seconds (gRPC's reconnect backoff, 1 s growing to 120 s by default, capped here); while
its channel is down, a Generate fails at once (UNAVAILABLE) and the call is run elsewhere.
"""

from __future__ import annotations

import grpc

from ostinato.v1 import worker_pb2_grpc

CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000))


class WorkerChannels:
    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, worker_pb2_grpc.WorkerStub] = {}

    def stub(self, address: str) -> worker_pb2_grpc.WorkerStub:
        stub = self._stubs.get(address)
        if stub is None:
            # no client interceptors: the caller passes the trace context as metadata
            # (gateway/trace_context.py)
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = worker_pb2_grpc.WorkerStub(channel)
        return stub

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
