"""The worker's gRPC service over a real sim engine process, reporting to a planner on loopback.

The planner here is a recording servicer (the planner itself is tested elsewhere): what is
under test is what the worker sends it while a call streams and when it ends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import redis.asyncio as aioredis

from cache.block_hash import prefix_block_hashes, prompt_block_hashes, tokenize_prompt
from cache.kv_index import KvIndex
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2, worker_pb2_grpc
from workers.engine_output import EngineOutput
from workers.kv_event_listener import KvEventListener
from workers.service import WorkerService
from workers.sglang_client import SGLangClient
from workers.sim.tokenizer import tokenize


class RecordingPlanner(planner_pb2_grpc.PlannerServicer):
    def __init__(self) -> None:
        self.progress: list[planner_pb2.ProgressReport] = []
        self.completions: list[planner_pb2.CompletionReport] = []

    async def ReportProgress(self, request, context):
        self.progress.append(request)
        return planner_pb2.ReportAck()

    async def ReportCompletion(self, request, context):
        self.completions.append(request)
        return planner_pb2.ReportAck()

    async def ReportCompletions(self, request, context):
        self.completions.extend(request.reports)
        return planner_pb2.ReportAck()


@asynccontextmanager
async def worker_on_loopback(engine_url: str, progress_every: int, kv_index: KvIndex | None = None,
                            kv_events: KvEventListener | None = None,
                            ) -> AsyncIterator[tuple[worker_pb2_grpc.WorkerStub, WorkerService,
                                                     RecordingPlanner]]:
    """A WorkerService over the engine, reporting to a recording planner; both on loopback."""
    recorder = RecordingPlanner()
    planner_server = grpc.aio.server()
    planner_pb2_grpc.add_PlannerServicer_to_server(recorder, planner_server)
    planner_port = planner_server.add_insecure_port("127.0.0.1:0")
    await planner_server.start()
    planner_channel = grpc.aio.insecure_channel(f"127.0.0.1:{planner_port}")
    engine = SGLangClient(engine_url)
    service = WorkerService("w-test", engine, planner_pb2_grpc.PlannerStub(planner_channel),
                            kv_index=kv_index, kv_events=kv_events)
    service.progress_every_tokens = progress_every
    worker_server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServicer_to_server(service, worker_server)
    worker_port = worker_server.add_insecure_port("127.0.0.1:0")
    await worker_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{worker_port}") as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            stub.address = f"127.0.0.1:{worker_port}"  # type: ignore[attr-defined]
            yield stub, service, recorder
    finally:
        await worker_server.stop(None)
        await engine.close()
        await planner_channel.close()
        await planner_server.stop(None)


def story(call_id: str, tokens: int) -> worker_pb2.GenerateRequest:
    return worker_pb2.GenerateRequest(
        program_id="p1", call_id=call_id, prompt="Tell me a long story.",
        sampling=common_pb2.SamplingParams(max_new_tokens=tokens, ignore_eos=True))


async def test_worker_reports_progress_while_streaming_then_completion(sim_engine_url: str) -> None:
    async with worker_on_loopback(sim_engine_url, 50) as (stub, service, recorder):
        chunks = [c async for c in stub.Generate(story("c1", 170))]
        assert chunks[-1].result.usage.completion_tokens == 170
        async with asyncio.timeout(30.0):  # (each drain step gives up after 3 s)
            while len(recorder.progress) < 3 or not recorder.completions:
                await service.drain_reports()
                await asyncio.sleep(0.01)
    counts = sorted(r.completion_tokens for r in recorder.progress)
    assert len(counts) == 3 and counts[0] >= 50 and counts[-1] < 170  # about 50, 100, 150
    assert all(b - a >= 50 for a, b in itertools.pairwise(counts))
    assert {(r.program_id, r.call_id, r.worker_id) for r in recorder.progress} == {
        ("p1", "c1", "w-test")}
    [done] = recorder.completions
    assert done.status == planner_pb2.COMPLETION_STATUS_OK
    assert done.usage.completion_tokens == 170


async def test_progress_reports_can_be_switched_off(sim_engine_url: str) -> None:
    async with worker_on_loopback(sim_engine_url, 0) as (stub, service, recorder):
        _ = [c async for c in stub.Generate(story("c2", 120))]
        await service.drain_reports()
    assert recorder.progress == [] and len(recorder.completions) == 1


async def test_worker_publishes_the_blocks_its_engine_now_holds(sim_engine_url: str,
                                                               redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    index = KvIndex(client, timeout_s=5.0)
    request = worker_pb2.GenerateRequest(
        program_id="p1", call_id="kv", cache_salt="tenant:acme", shared_prefix_bytes=130,
        prompt="A prompt long enough to fill several blocks of sixty-four bytes. " * 4,
        sampling=common_pb2.SamplingParams(max_new_tokens=40, ignore_eos=True))
    try:
        await client.delete("ost:kv:{w:w-test}:blocks")
        async with worker_on_loopback(sim_engine_url, 0, index) as (stub, service, _):
            chunks = [c async for c in stub.Generate(request)]
            await service.drain_reports()
            output = "".join(c.delta for c in chunks)
            # what the engine holds: the prompt's ids, then the output's
            ids, shared = tokenize_prompt(tokenize, request.prompt, 130)
            ids += tokenize(output)
            whole = prefix_block_hashes(ids, "tenant:acme", shared_tokens=shared)
            stats = await stub.Stats(worker_pb2.StatsRequest())
            assert stats.kv_index_source == "completion" and stats.kv_index_blocks == len(whole)
        assert len(whole) > len(prompt_block_hashes(tokenize, request.prompt, "x"))  # the answer adds blocks
        found = await index.longest_prefixes(["w-test"], whole)
        assert found == {"w-test": len(whole)}
        other = prefix_block_hashes(ids, "tenant:globex", shared_tokens=shared)
        assert await index.longest_prefixes(["w-test"], other) == {"w-test": 1}  # the shared block
    finally:
        await client.aclose()


async def test_reports_carry_the_attempt_and_recent_ones_are_sent_again(
        sim_engine_url: str) -> None:
    async with worker_on_loopback(sim_engine_url, 0) as (stub, service, recorder):
        retried = story("r1", 8)
        retried.attempt = 3
        _ = [c async for c in stub.Generate(retried)]
        _ = [c async for c in stub.Generate(story("r2", 8))]  # no attempt: a non-gateway caller
        await service.drain_reports()
        assert sorted((r.call_id, r.attempt) for r in recorder.completions) == [("r1", 3),
                                                                              ("r2", 0)]
        assert service.replay_reports() == 1  # a restarted planner: r1's report again
        await service.drain_reports()
    assert sorted((r.call_id, r.attempt) for r in recorder.completions) == [
        ("r1", 3), ("r1", 3), ("r2", 0)]



class _OneAnswerEngine:
    """An engine client that answers every request at once, whole."""

    base_url = "http://engine"

    async def generate(self, request, stream=True):  # type: ignore[no-untyped-def]
        yield EngineOutput(delta="ok", text="ok", finish_reason="stop", prompt_tokens=3,
                           completion_tokens=1, cached_tokens=0, e2e_latency=0.01,
                           simulated=True)


async def test_a_calls_report_and_metrics_follow_its_result_even_when_its_caller_stops_there(
) -> None:
    # The result goes out first (the call's path); the report, the metrics and the call's
    # end follow once the caller has sent it, or closed the generation right after it.
    service = WorkerService("w", _OneAnswerEngine(), object())  # type: ignore[arg-type]
    sent: list[planner_pb2.CompletionReport] = []
    service._calls._send = lambda report, fallback=False: sent.append(report)  # type: ignore[method-assign]
    request = worker_pb2.GenerateRequest(program_id="p", call_id="c", attempt=1, prompt="hi")
    calls = service.metrics.calls.labels("w", "ok")
    for close in (False, True):
        sent.clear()
        ok = calls._value.get()
        chunks = service._generate(request)
        chunk = await anext(chunks)
        assert chunk.result.finish_reason == "stop" and chunk.delta == "ok"
        assert not sent and ("p", "c", 1) in service.known_calls() and service.running == 1
        assert calls._value.get() == ok
        if close:
            await chunks.aclose()
        else:
            assert [c async for c in chunks] == []
        assert [(r.call_id, r.status) for r in sent] == [("c", planner_pb2.COMPLETION_STATUS_OK)]
        assert service.running == 0 and calls._value.get() == ok + 1
        assert ("p", "c", 1) in service.known_calls()  # (reported lately)
