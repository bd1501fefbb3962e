"""GenerateStream: many calls over one stream, as the gateway runs them (its WorkerChannels
against the worker's service on loopback, over a real sim engine process). Each call gets
its own chunks, ending with its result; a refused one ends with Generate's status; one
whose caller stops reading is cancelled at the worker, reported CANCELLED."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.worker_channels import WorkerChannels
from ostinato.stream_tasks import BATCHES, has_batches, unbatched
from ostinato.v1 import common_pb2, planner_pb2, worker_pb2
from tests.hand_rpc import HandDrivenRpc
from tests.workers.test_service import story, worker_on_loopback
from workers.generate_stream import serve_generations
from workers.service import WorkerService
from workers.sglang_client import SGLangClient


async def _text_and_result(channels: WorkerChannels, address: str,
                           request: worker_pb2.GenerateRequest) -> tuple[str, worker_pb2.GenerateResult]:
    chunks = [c async for c in channels.generate(address, request, 30.0)]
    assert chunks[-1].HasField("result") and not any(c.HasField("result") for c in chunks[:-1])
    return "".join(c.delta for c in chunks), chunks[-1].result


async def test_calls_at_once_over_one_stream_each_get_their_own_answer(sim_engine_url: str) -> None:
    channels = WorkerChannels()
    try:
        async with worker_on_loopback(sim_engine_url, 0) as (stub, service, recorder):
            address = stub.address  # type: ignore[attr-defined]
            answers = await asyncio.gather(*(_text_and_result(channels, address, story(c, n))
                                             for c, n in (("a", 40), ("b", 60), ("c", 8))))
            assert [r.usage.completion_tokens for _, r in answers] == [40, 60, 8]
            alone = [c async for c in stub.Generate(story("a", 40))]  # the unary RPC, same call
            assert answers[0][0] == "".join(c.delta for c in alone)
            await service.drain_reports()
        assert sorted((r.call_id, r.status) for r in recorder.completions) == [
            ("a", planner_pb2.COMPLETION_STATUS_OK)] * 2 + [
            ("b", planner_pb2.COMPLETION_STATUS_OK), ("c", planner_pb2.COMPLETION_STATUS_OK)]
    finally:
        await channels.close()


@pytest.mark.parametrize("sampling", [None, common_pb2.SamplingParams(n=2)])
async def test_a_refused_call_ends_with_generates_status(sim_engine_url: str,
                                                        sampling: common_pb2.SamplingParams | None,
                                                        ) -> None:
    """No prompt; or n > 1 (one generation's outputs are one sequence: SGLang's events of
    several would be read as one)."""
    channels = WorkerChannels()
    try:
        async with worker_on_loopback(sim_engine_url, 0) as (stub, _, _):
            empty = worker_pb2.GenerateRequest(program_id="p1", call_id="e") if sampling is None \
                else worker_pb2.GenerateRequest(program_id="p1", call_id="e", prompt="hi",
                                                sampling=sampling)
            with pytest.raises(grpc.aio.AioRpcError) as streamed:
                _ = [c async for c in channels.generate(stub.address, empty, 30.0)]  # type: ignore[attr-defined]
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                _ = [c async for c in stub.Generate(empty)]
            assert streamed.value.code() == unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert streamed.value.details() == unary.value.details()
            # the stream serves on
            _, result = await _text_and_result(channels, stub.address, story("ok", 8))  # type: ignore[attr-defined]
            assert result.usage.completion_tokens == 8
    finally:
        await channels.close()


async def test_a_call_whose_caller_stops_reading_is_cancelled_at_the_worker(
        sim_engine_url: str) -> None:
    channels = WorkerChannels()
    try:
        async with worker_on_loopback(sim_engine_url, 0) as (stub, service, recorder):
            chunks = channels.generate(stub.address, story("long", 100_000), 60.0)  # type: ignore[attr-defined]
            first = await anext(chunks)
            assert not first.HasField("result")
            await chunks.aclose()  # the caller went away
            async with asyncio.timeout(30.0):  # until the worker has ended and reported it
                while not recorder.completions:
                    await service.drain_reports()
                    await asyncio.sleep(0.01)
            [report] = recorder.completions
            assert (report.call_id, report.status) == ("long",
                                                       planner_pb2.COMPLETION_STATUS_CANCELLED)
            assert service.running == 0
    finally:
        await channels.close()


async def _one_report(service: WorkerService, recorder) -> planner_pb2.CompletionReport:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(30.0):  # until the worker has ended and reported it
        while not recorder.completions:
            await service.drain_reports()
            await asyncio.sleep(0.01)
    [report] = recorder.completions
    return report


@pytest.mark.parametrize("rpc", ["GenerateStream", "Generate"])
async def test_a_call_its_deadline_cuts_is_deadline_exceeded_at_the_worker(
        sim_engine_url: str, rpc: str) -> None:
    """Its generation stopped by its own deadline (GenerateStream's timeout_s, Generate's
    RPC deadline), not by a caller leaving: reported DEADLINE_EXCEEDED to the planner and
    counted so (tracing review 2026-12-05 F5, the worker's half)."""
    async with worker_on_loopback(sim_engine_url, 0) as (stub, service, recorder):
        if rpc == "Generate":
            # A deadline that passes before the handler starts ends the call with nothing run
            # at the worker (the planner frees such a grant): the first chunk shows it started.
            chunks = stub.Generate(story("long", 100_000), timeout=5.0)
            first = await anext(aiter(chunks))
            assert not first.HasField("result")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                _ = [c async for c in chunks]
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            async def requests():  # type: ignore[no-untyped-def]
                yield worker_pb2.GenerateStreamRequest(id=1, request=story("long", 100_000),
                                                       timeout_s=0.5)
                await asyncio.Event().wait()  # the stream stays open: no cancel from us

            stream = stub.GenerateStream(requests())
            async for reply in stream:
                if reply.end:
                    assert reply.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
                    break
            stream.cancel()
        report = await _one_report(service, recorder)
        assert (report.call_id, report.status) == (
            "long", planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED)
        assert service.metrics.calls.labels("w-test", "DEADLINE_EXCEEDED")._value.get() == 1
        assert service.metrics.calls.labels("w-test", "cancelled")._value.get() == 0
        assert service.running == 0


async def test_a_call_taken_whole_comes_in_one_chunk_with_the_same_text(sim_engine_url: str) -> None:
    channels = WorkerChannels()
    try:
        async with worker_on_loopback(sim_engine_url, 0) as (stub, _, _):
            address = stub.address  # type: ignore[attr-defined]
            streamed, _ = await _text_and_result(channels, address, story("a", 40))
            request = story("a", 40)
            request.whole = True
            chunks = [c async for c in channels.generate(address, request, 30.0)]
            assert len(chunks) == 1 and chunks[0].HasField("result")
            assert chunks[0].delta == streamed and chunks[0].result.usage.completion_tokens == 40
    finally:
        await channels.close()


@pytest.mark.parametrize("reads_carriers", [True, False])
async def test_carriers_only_with_a_caller_that_reads_them(sim_engine_url: str,
                                                           reads_carriers: bool) -> None:
    """The worker says in its initial metadata that it reads carriers; one carrier of three
    generations runs all three. Chunks go as carriers only to a caller that said it reads
    them (a caller from before carriers, no metadata, gets one message at a time)."""
    async with worker_on_loopback(sim_engine_url, 0) as (stub, _, _):
        calls = [worker_pb2.GenerateStreamRequest(id=i, request=story(f"c{i}", 8), timeout_s=30)
                 for i in (1, 2, 3)]

        async def requests():  # type: ignore[no-untyped-def]
            yield worker_pb2.GenerateStreamRequest(batch=calls)

        stream = stub.GenerateStream(requests(), metadata=(
            (BATCHES, "1"),) if reads_carriers else ())
        assert has_batches(await stream.initial_metadata())
        received, results = [], {}
        async for reply in stream:
            received.append(reply)
            for one in unbatched(reply):
                if one.chunk.HasField("result"):
                    results[one.id] = one.chunk.result.usage.completion_tokens
            if len(results) == 3:
                stream.cancel()
                break
        assert results == {1: 8, 2: 8, 3: 8}
        if not reads_carriers:
            assert not any(reply.batch for reply in received)


@pytest.mark.parametrize(("whole", "max_new_tokens", "n", "every", "streams"), [
    (True, 8, None, 64, False),  # whole, short: the engine answers once
    (True, 63, 1, 64, False),
    (True, 64, None, 64, True),  # a progress report could come
    (True, None, None, 64, True),  # no bound on its tokens
    (True, 10_000, None, 0, False),  # progress reports off
    (True, 8, 2, 64, True),  # two samples
    (False, 8, None, 64, True),  # streamed to its caller
])
def test_which_calls_the_engine_streams(whole: bool, max_new_tokens: int | None, n: int | None,
                                        every: int, streams: bool) -> None:
    service = WorkerService("w", SGLangClient("http://127.0.0.1:9"), None)  # type: ignore[arg-type]
    service.progress_every_tokens = every
    request = worker_pb2.GenerateRequest(whole=whole, sampling=common_pb2.SamplingParams(
        max_new_tokens=max_new_tokens, n=n))
    assert service._streams(request) is streams


async def test_a_short_call_taken_whole_is_one_engine_answer_with_the_streamed_text(
        sim_engine_url: str) -> None:
    """Not streamed from the engine (it answers once), the call's text, usage and report
    are those of the same call streamed."""
    channels = WorkerChannels()
    try:
        async with worker_on_loopback(sim_engine_url, 64) as (stub, service, recorder):
            address = stub.address  # type: ignore[attr-defined]
            request = story("w", 20)
            # the prompt cached first (whatever ran on this engine before: the usage's cached
            # tokens are the same for both calls below)
            await _text_and_result(channels, address, request)
            streamed, streamed_result = await _text_and_result(channels, address, request)
            request.whole = True
            assert not service._streams(request)
            whole, result = await _text_and_result(channels, address, request)
            assert whole == streamed and result.usage == streamed_result.usage
            await service.drain_reports()
        assert [(r.call_id, r.status) for r in recorder.completions] == [
            ("w", planner_pb2.COMPLETION_STATUS_OK)] * 3
    finally:
        await channels.close()


async def test_a_generation_that_raises_ends_internal_at_once() -> None:
    # a bug in a generation: its caller gets its end (INTERNAL) now, not at its deadline
    async def generate(request: worker_pb2.GenerateRequest):  # type: ignore[no-untyped-def]
        yield worker_pb2.GenerateChunk(delta="a")
        raise RuntimeError("bug")

    async def requests():  # type: ignore[no-untyped-def]
        yield worker_pb2.GenerateStreamRequest(id=7, request=worker_pb2.GenerateRequest())

    async with asyncio.timeout(10):
        replies = [r async for r in serve_generations(generate, requests())]
    assert [r.chunk.delta for r in replies[:-1]] == ["a"]
    assert replies[-1].id == 7 and replies[-1].end
    assert replies[-1].status == grpc.StatusCode.INTERNAL.value[0]


async def test_a_generate_whose_rpc_ends_while_a_chunk_is_sent_is_closed_and_reported(
        sim_engine_url: str) -> None:
    """gRPC cancels Generate's RPC while sending one of its chunks: the handler is left
    suspended at that chunk, never closed by gRPC (only when collected: a test saw no report
    for 30 s under load). Its end closes it: the engine request ends, reported CANCELLED."""
    async with worker_on_loopback(sim_engine_url, 0) as (_, service, recorder):
        rpc = HandDrivenRpc()
        handler = service.Generate(story("long", 100_000), rpc)
        first = await anext(handler)  # the chunk "being sent": the handler waits at it
        assert not first.HasField("result") and service.running == 1
        await rpc.end()
        await service.drain_reports()
        assert [(r.call_id, r.status) for r in recorder.completions] == [
            ("long", planner_pb2.COMPLETION_STATUS_CANCELLED)]
        assert service.running == 0
        assert handler.ag_frame is not None  # (gRPC's handler itself was left as it was)


async def test_a_hung_engines_cut_that_ends_the_rpc_at_a_chunk_is_reported_failed(
        sim_engine_url: str) -> None:
    """The worker cuts the calls of an engine found hung (`engine_hung` cancels each call's
    RPC task); where the cancel lands in gRPC's send of a chunk, the RPC ends there and its
    end closes the generation at that chunk. It is the engine's failure (FAILED: the gateway
    may run it again elsewhere), not the caller's cancel (review 2026-12-05, was CANCELLED)."""
    async with worker_on_loopback(sim_engine_url, 0) as (_, service, recorder):
        rpc = HandDrivenRpc()
        handler = service.Generate(story("long", 100_000), rpc)
        # run in a task of its own: the one `engine_hung` cancels, done by then (its cancel
        # landed in gRPC's code, not in the generation)
        first = await asyncio.create_task(anext(handler))
        assert not first.HasField("result")
        assert service.engine_hung() == 1
        await rpc.end()
        await service.drain_reports()
        assert [(r.call_id, r.status) for r in recorder.completions] == [
            ("long", planner_pb2.COMPLETION_STATUS_FAILED)]
        assert service.running == 0


async def test_a_generate_that_answered_is_not_closed_again_by_its_rpcs_end(
        sim_engine_url: str) -> None:
    async with worker_on_loopback(sim_engine_url, 0) as (_, service, recorder):
        rpc = HandDrivenRpc()
        chunks = [c async for c in service.Generate(story("short", 8), rpc)]
        assert chunks[-1].result.usage.completion_tokens == 8
        await rpc.end()
        await service.drain_reports()
        assert [(r.call_id, r.status) for r in recorder.completions] == [
            ("short", planner_pb2.COMPLETION_STATUS_OK)]


async def test_a_generate_stream_that_ends_while_a_reply_is_sent_cancels_its_generations(
        sim_engine_url: str) -> None:
    """GenerateStream's handler left at a reply by gRPC: the stream's end cancels the
    generations it runs as tasks of their own (each reported CANCELLED)."""
    async with worker_on_loopback(sim_engine_url, 0) as (_, service, recorder):
        rpc = HandDrivenRpc()

        async def requests():  # type: ignore[no-untyped-def]
            yield worker_pb2.GenerateStreamRequest(id=1, request=story("long", 100_000))
            await asyncio.Event().wait()  # the caller's side stays open

        handler = service.GenerateStream(requests(), rpc)
        await anext(handler)  # a reply "being sent": the handler waits at it
        assert service.running == 1
        await rpc.end()
        await service.drain_reports()
        assert [(r.call_id, r.status) for r in recorder.completions] == [
            ("long", planner_pb2.COMPLETION_STATUS_CANCELLED)]
        assert service.running == 0
