"""The synchronous Python SDK.

    with ostinato.Client("127.0.0.1:50051") as client:
        with client.program() as program:
            out = program.call(messages=[{"role": "user", "content": "Hi"}])
            print(out.text, out.usage, out.worker_id)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import grpc

from ostinato.sdk_types import (
    CallOutput,
    OstinatoError,
    ProgramSummary,
    ThreadTracker,
    auth_metadata,
    call_output,
    call_spec,
    program_options,
    summary,
    traced,
    translate,
)
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc


class CallStream:
    """Iterates over text deltas; `.result` holds the CallOutput once the stream ends."""

    def __init__(self, chunks: Iterator[gateway_pb2.CallChunk], on_done: Any) -> None:
        self._chunks = chunks
        self._on_done = on_done
        self.result: CallOutput | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self._chunks:
                if chunk.HasField("result"):
                    self.result = call_output(chunk.result)
                    self._on_done(self.result)
                elif chunk.delta:
                    yield chunk.delta
        except grpc.RpcError as exc:
            raise translate(exc) from None
        if self.result is None:
            raise OstinatoError(grpc.StatusCode.INTERNAL, "stream ended without a result")

    def cancel(self) -> None:
        """Stops the call: the gateway cancels it in the planner and aborts the engine request."""
        self._chunks.cancel()  # type: ignore[attr-defined]  # a gRPC response stream


class Program:
    def __init__(self, stub: gateway_pb2_grpc.GatewayStub, program_id: str,
                 metadata: tuple[tuple[str, str], ...], timeout_s: float | None) -> None:
        self._stub = stub
        self.program_id = program_id
        self._metadata = metadata
        self._timeout = timeout_s
        self._threads = ThreadTracker()
        self.summary: ProgramSummary | None = None

    def stream(self, *, thread_id: str | None = None, parents: list[str] | None = None,
               **kwargs: Any) -> CallStream:
        """Starts a call and streams its text. Without `parents`, the call depends on the
        previous call of its thread."""
        spec = call_spec(thread_id=thread_id, parents=self._threads.parents(thread_id, parents),
                         **kwargs)
        chunks = self._stub.Call(gateway_pb2.CallRequest(program_id=self.program_id, call=spec),
                                 metadata=traced(self._metadata), timeout=self._timeout)
        return CallStream(chunks, lambda out: self._threads.record(thread_id, out.call_id))

    def call(self, **kwargs: Any) -> CallOutput:
        """Runs a call to completion; see `stream` for the arguments."""
        s = self.stream(**kwargs)
        for _ in s:
            pass
        assert s.result is not None
        return s.result

    def end(self) -> ProgramSummary:
        if self.summary is None:
            try:
                resp = self._stub.EndProgram(
                    gateway_pb2.EndProgramRequest(program_id=self.program_id),
                    metadata=traced(self._metadata), timeout=self._timeout)
            except grpc.RpcError as exc:
                raise translate(exc) from None
            self.summary = summary(resp)
        return self.summary

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


class Client:
    def __init__(self, address: str = "127.0.0.1:50051", api_key: str | None = None,
                 timeout_s: float | None = None) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout_s

    def program(self, *, program_id: str | None = None, deadline_s: float | None = None,
                program_class: str = "", reject_when_late: bool = False,
                labels: Mapping[str, str] | None = None) -> Program:
        opts = program_options(program_id, deadline_s, program_class, reject_when_late, labels)
        try:
            resp = self._stub.StartProgram(gateway_pb2.StartProgramRequest(options=opts),
                                           metadata=traced(self._metadata), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return Program(self._stub, resp.program_id, self._metadata, self._timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
