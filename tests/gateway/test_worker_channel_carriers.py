"""The gateway's stream to a worker, against a real gRPC server running the worker's
GenerateStream (workers/generate_stream.py) with a stand-in generation: carriers never pass
a receive limit, whatever queues at once (a carrier over it would end the stream, and
every call on it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from gateway.worker_channels import WorkerChannels
from ostinato.stream_tasks import MAX_BATCH, MAX_BATCH_BYTES, agree_batches
from ostinato.v1 import worker_pb2, worker_pb2_grpc
from tests.gateway.loop_reports import ended, loop_reports
from workers.generate_stream import serve_generations

CALLS = 200
RESULT_CHARS = 40_000  # 200 x 40 kB finishing together: 8 MB, twice gRPC's default limit


class _Worker(worker_pb2_grpc.WorkerServicer):
    def __init__(self) -> None:
        self.started = 0
        self.all_started = asyncio.Event()
        self.go = asyncio.Event()
        self.carriers: list[tuple[int, int]] = []  # (messages, bytes) of each carrier sent

    async def generate(self, request: worker_pb2.GenerateRequest,
                       ) -> AsyncIterator[worker_pb2.GenerateChunk]:
        self.started += 1
        if self.started == CALLS:
            self.all_started.set()
        await self.go.wait()  # every call finishes in the same loop turn
        yield worker_pb2.GenerateChunk(delta="x" * RESULT_CHARS,
                                       result=worker_pb2.GenerateResult(finish_reason="stop"))

    async def GenerateStream(self, request_iterator, context):
        batches = await agree_batches(context)
        async for reply in serve_generations(self.generate, request_iterator, None, batches):
            if reply.batch:
                self.carriers.append((len(reply.batch), reply.ByteSize()))
            yield reply


async def test_results_that_finish_together_all_arrive_in_carriers_under_the_limit() -> None:
    assert CALLS * RESULT_CHARS > 4 * MAX_BATCH_BYTES
    worker = _Worker()
    server = grpc.aio.server()  # gRPC's default receive limit (4 MiB) at both ends
    worker_pb2_grpc.add_WorkerServicer_to_server(worker, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    channels = WorkerChannels()

    async def call(i: int) -> str:
        request = worker_pb2.GenerateRequest(call_id=str(i), prompt="p")
        chunks = [c async for c in channels.generate(address, request, 60.0)]
        assert len(chunks[-1].delta) == RESULT_CHARS
        return chunks[-1].result.finish_reason

    try:
        calls = [asyncio.create_task(call(i)) for i in range(CALLS)]
        async with asyncio.timeout(60):
            await worker.all_started.wait()
            worker.go.set()
            assert await asyncio.gather(*calls) == ["stop"] * CALLS
        assert worker.carriers, "the results that finished together went in carriers"
        # (a carrier's own framing: a few bytes per message)
        assert max(size for _, size in worker.carriers) <= MAX_BATCH_BYTES + 8 * MAX_BATCH
    finally:
        await channels.close()
        await server.stop(0)


async def test_a_stream_the_worker_ended_leaves_no_task_behind() -> None:
    """The worker restarted: the ended stream's request iterator ends too (as the planner's
    admission stream's: tests/gateway/test_admissions.py)."""
    worker = _Worker()
    worker.go.set()
    server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServicer_to_server(worker, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    channels = WorkerChannels()
    try:
        async with loop_reports() as reported:
            request = worker_pb2.GenerateRequest(call_id="a", prompt="p")
            assert [c.result.finish_reason async for c in channels.generate(
                address, request, 60.0)] == ["stop"]
            reader = channels._streams[address].reader
            await server.stop(None)
            await ended(reader)  # the stream ended with the worker
            del reader
        assert not reported, reported
    finally:
        await channels.close()
