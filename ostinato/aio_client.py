"""The asyncio Python SDK: the same surface as ostinato.Client, awaitable.

    async with ostinato.AsyncClient("127.0.0.1:50051") as client:
        async with await client.program() as program:
            a, b = await asyncio.gather(program.call(messages=..., thread_id="a"),
                                        program.call(messages=..., thread_id="b"))

Retries through a gateway restart as ostinato.Client (ostinato/sdk_types.py, SERVICE_CONFIG).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from ostinato.sdk_types import (
    CHANNEL_OPTIONS,
    CacheStats,
    CallOutput,
    OstinatoError,
    ProgramSummary,
    ThreadTracker,
    auth_metadata,
    cache_stats,
    call_output,
    call_spec,
    new_id,
    program_options,
    summary,
    traced,
    translate,
)
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc


class AsyncCallStream:
    """As ostinato.client.CallStream: deltas, `.result`, `restarts`, `text`, `on_restart`."""

    def __init__(self, call: Any, on_done: Any,
                 on_restart: Callable[[], None] | None = None) -> None:
        self._call = call
        self._on_done = on_done
        self._on_restart = on_restart
        self.result: CallOutput | None = None
        self.restarts = 0
        self.text = ""

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._call:
                if chunk.restarted:
                    self.restarts += 1
                    self.text = ""
                    if self._on_restart is not None:
                        self._on_restart()
                if chunk.HasField("result"):
                    self.result = call_output(chunk.result)
                    self._on_done(self.result)
                elif chunk.delta:
                    self.text += chunk.delta
                    yield chunk.delta
        except grpc.RpcError as exc:
            raise translate(exc) from None
        if self.result is None:
            raise OstinatoError(grpc.StatusCode.INTERNAL, "stream ended without a result")

    def cancel(self) -> None:
        self._call.cancel()


class AsyncProgram:
    def __init__(self, stub: gateway_pb2_grpc.GatewayStub, program_id: str,
                 metadata: tuple[tuple[str, str], ...], timeout_s: float | None,
                 restart_on_failure: bool = False) -> None:
        self._stub = stub
        self.program_id = program_id
        self._metadata = metadata
        self._timeout = timeout_s
        self._restart_on_failure = restart_on_failure
        self._threads = ThreadTracker()
        self.summary: ProgramSummary | None = None

    def stream(self, *, thread_id: str | None = None, parents: list[str] | None = None,
               on_restart: Callable[[], None] | None = None, **kwargs: Any) -> AsyncCallStream:
        kwargs.setdefault("restart_on_failure", self._restart_on_failure)
        kwargs["call_id"] = kwargs.get("call_id") or new_id()  # a retried Call is the same call
        spec = call_spec(thread_id=thread_id, parents=self._threads.parents(thread_id, parents),
                         **kwargs)
        call = self._stub.Call(gateway_pb2.CallRequest(program_id=self.program_id, call=spec),
                               metadata=traced(self._metadata), timeout=self._timeout)
        return AsyncCallStream(call, lambda out: self._threads.record(thread_id, out.call_id),
                               on_restart)

    async def call(self, **kwargs: Any) -> CallOutput:
        s = self.stream(**kwargs)
        async for _ in s:
            pass
        assert s.result is not None
        return s.result

    async def end(self) -> ProgramSummary:
        if self.summary is None:
            try:
                resp = await self._stub.EndProgram(
                    gateway_pb2.EndProgramRequest(program_id=self.program_id),
                    metadata=traced(self._metadata), timeout=self._timeout)
            except grpc.RpcError as exc:
                raise translate(exc) from None
            self.summary = summary(resp)
        return self.summary

    async def __aenter__(self) -> AsyncProgram:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.end()


class AsyncClient:
    def __init__(self, address: str = "127.0.0.1:50051", api_key: str | None = None,
                 timeout_s: float | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout_s

    async def program(self, *, program_id: str | None = None, deadline_s: float | None = None,
                      program_class: str = "", reject_when_late: bool = False,
                      labels: Mapping[str, str] | None = None,
                      restart_on_failure: bool = False) -> AsyncProgram:
        opts = program_options(program_id, deadline_s, program_class, reject_when_late, labels)
        try:
            resp = await self._stub.StartProgram(gateway_pb2.StartProgramRequest(options=opts),
                                                 metadata=traced(self._metadata), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return AsyncProgram(self._stub, resp.program_id, self._metadata, self._timeout,
                            restart_on_failure)

    async def cache_stats(self) -> CacheStats:
        try:
            resp = await self._stub.CacheStats(gateway_pb2.CacheStatsRequest(),
                                               metadata=traced(self._metadata),
                                               timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return cache_stats(resp)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
