"""The synchronous Python SDK.

    with ostinato.Client("127.0.0.1:50051") as client:
        with client.program() as program:
            out = program.call(messages=[{"role": "user", "content": "Hi"}])
            print(out.text, out.usage, out.worker_id)

Through a gateway restart, operations wait for the gateway and idempotent ones are retried
(the policy and what it retries: ostinato/sdk_types.py, SERVICE_CONFIG).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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


class CallStream:
    """Iterates over text deltas; `.result` holds the CallOutput once the stream ends.

    A call with `restart_on_failure` whose worker failed after streaming starts over: the
    deltas already yielded are void, `on_restart` (given to `Program.stream`) is called
    before the new answer's first delta, and `restarts` counts how often that happened.
    `text` is the current answer so far."""

    def __init__(self, chunks: Iterator[gateway_pb2.CallChunk], on_done: Any,
                 on_restart: Callable[[], None] | None = None) -> None:
        self._chunks = chunks
        self._on_done = on_done
        self._on_restart = on_restart
        self.result: CallOutput | None = None
        self.restarts = 0
        self.text = ""

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self._chunks:
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
        """Stops the call: the gateway cancels it in the planner and aborts the engine request."""
        self._chunks.cancel()  # type: ignore[attr-defined]  # a gRPC response stream


class Program:
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
               on_restart: Callable[[], None] | None = None, **kwargs: Any) -> CallStream:
        """Starts a call and streams its text. Without `parents`, the call depends on the
        previous call of its thread. `restart_on_failure` (default: the program's) lets
        a call whose worker fails after streaming start over (see CallStream)."""
        kwargs.setdefault("restart_on_failure", self._restart_on_failure)
        kwargs["call_id"] = kwargs.get("call_id") or new_id()  # a retried Call is the same call
        spec = call_spec(thread_id=thread_id, parents=self._threads.parents(thread_id, parents),
                         **kwargs)
        chunks = self._stub.Call(gateway_pb2.CallRequest(program_id=self.program_id, call=spec),
                                 metadata=traced(self._metadata), timeout=self._timeout)
        return CallStream(chunks, lambda out: self._threads.record(thread_id, out.call_id),
                          on_restart)

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
        """`timeout_s`: every operation's deadline (None: calls have none, other operations
        sdk_types.UNARY_DEADLINE_S)."""
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout_s

    def program(self, *, program_id: str | None = None, deadline_s: float | None = None,
                program_class: str = "", reject_when_late: bool = False,
                labels: Mapping[str, str] | None = None,
                restart_on_failure: bool = False) -> Program:
        """Opens a program (named here when `program_id` is None, so that a retry opens the
        same one). `restart_on_failure`: its calls' default (see Program.stream)."""
        opts = program_options(program_id, deadline_s, program_class, reject_when_late, labels)
        try:
            resp = self._stub.StartProgram(gateway_pb2.StartProgramRequest(options=opts),
                                           metadata=traced(self._metadata), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return Program(self._stub, resp.program_id, self._metadata, self._timeout,
                       restart_on_failure)

    def cache_stats(self) -> CacheStats:
        """The answer caches' counters of the gateway that answers."""
        try:
            resp = self._stub.CacheStats(gateway_pb2.CacheStatsRequest(),
                                         metadata=traced(self._metadata), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return cache_stats(resp)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
