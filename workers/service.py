"""The Worker gRPC servicer: GenerateRequest -> SGLang /generate stream -> GenerateChunks.

Every call's end is reported to the planner, and the calls this worker knows go with its
heartbeats (workers/call_reports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import grpc
import structlog

from cache.block_hash import Tokenize, prefix_block_hashes, tokenize_prompt
from cache.kv_index import KvIndex
from ostinato.rpc_closing import closer
from ostinato.stream_tasks import agree_batches
from ostinato.tokenizers import load_tokenizer
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2, worker_pb2_grpc
from tracing.grpc_interceptors import SpanDescriber, recording
from workers.call_reports import CallAttempt, CallReports
from workers.engine_output import EngineOutput
from workers.engine_request import engine_request
from workers.generate_stream import (
    GENERATION_DEADLINE,
    GenerateRefused,
    cut_by_its_deadline,
    serve_generations,
)
from workers.kv_event_listener import KvEventListener
from workers.metrics import CANCELLED, WorkerMetrics
from workers.sglang_client import (
    EngineError,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    SGLangClient,
)

log = structlog.get_logger(__name__)


_ENGINE_STATUS = {
    EngineUnavailable: grpc.StatusCode.UNAVAILABLE,
    EngineRejected: grpc.StatusCode.INVALID_ARGUMENT,
    EngineTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def token_logprobs(out: EngineOutput) -> list[common_pb2.TokenLogprob]:
    """SGLang's output_token_logprobs / output_top_logprobs ([logprob, id, text] entries)."""
    result = []
    for i, entry in enumerate(out.token_logprobs):
        tops = out.top_logprobs[i] if i < len(out.top_logprobs) and out.top_logprobs[i] else []
        result.append(common_pb2.TokenLogprob(
            token=str(entry[2] or ""), logprob=float(entry[0]),
            top_logprobs=[common_pb2.TopLogprob(token=str(t[2] or ""), logprob=float(t[0]))
                          for t in tops]))
    return result


class WorkerService(worker_pb2_grpc.WorkerServicer):
    def __init__(
        self,
        worker_id: str,
        engine: SGLangClient,
        planner: planner_pb2_grpc.PlannerStub,
        model: str = "",
        kv_index: KvIndex | None = None,
        *,
        tokenize: Tokenize | None = None,
        kv_events: KvEventListener | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        """With `kv_events` the index follows the engine's KV events (its translator is told
        each call's prompt tokens); else blocks are published on completion."""
        self.worker_id = worker_id
        self.metrics = metrics if metrics is not None else WorkerMetrics(worker_id, model)
        self._kv_index = kv_index
        self._tokenize = tokenize or load_tokenizer("sim")
        self._kv_events = kv_events
        self._translator = kv_events.translator if kv_events is not None else None
        self._engine = engine
        self._planner = planner
        self._model = model
        self.simulated = False
        self._running = 0
        self._idle = asyncio.Event()  # set while no call streams from the engine
        self._idle.set()
        # the tasks waiting on the engine for a call's answer (request id -> task), and the
        # ones `engine_hung` cut
        self._waiting: dict[str, asyncio.Task[object]] = {}
        self._hung: set[str] = set()
        self._completed = 0
        self._failed = 0
        self._reports: set[asyncio.Task[None]] = set()
        self._calls = CallReports(worker_id, planner)
        self.progress_every_tokens = 64  # 0: no progress reports
        self.engine_healthy = True  # the engine's last health check (workers/main.py)
        # Tests only (worker.debug_drop_reports): a call's result is streamed, its completion
        # report never sent (with the worker killed after it: a worker dying then).
        self.drop_reports = False
        # GenerateStream's generations get this span (the interceptor gives Generate's)
        self.generate_span: SpanDescriber | None = None

    @property
    def running(self) -> int:
        """Calls streaming from the engine now."""
        return self._running

    def engine_hung(self) -> int:
        """The engine failed its health check (SGLang's /health_generate: nothing came out
        of its scheduler for the probe's timeout): the calls waiting on it end UNAVAILABLE,
        so the gateway runs those that have streamed nothing on another worker, instead of
        leaving them to their deadline (workers review 2026-12-05 F2). How many."""
        for rid, task in self._waiting.items():
            if rid not in self._hung:
                self._hung.add(rid)
                task.cancel()
        return len(self._waiting)

    async def drained(self, timeout_s: float) -> bool:
        """Until no call streams from the engine (True), or `timeout_s` (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    @property
    def kv_events(self) -> KvEventListener | None:
        return self._kv_events

    def known_calls(self) -> set[CallAttempt]:
        return self._calls.known()

    def replay_reports(self) -> int:
        return self._calls.replay()

    def _progress(self, req: worker_pb2.GenerateRequest, completion_tokens: int) -> None:
        """Best effort, not awaited and never retried: a lost report only delays a refinement."""
        report = planner_pb2.ProgressReport(program_id=req.program_id, call_id=req.call_id,
                                            worker_id=self.worker_id,
                                            completion_tokens=completion_tokens)

        async def send() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self._planner.ReportProgress(report, timeout=2.0)

        self._spawn(send())

    def _prompt_tokens(self, req: worker_pb2.GenerateRequest) -> tuple[list[int], int]:
        """The prompt's ids and shared-prefix length: the gateway's (tokenized once there),
        or, from a caller that sent only text, this worker's tokenization of it."""
        if req.input_ids:
            return list(req.input_ids), req.shared_prefix_tokens
        return tokenize_prompt(self._tokenize, req.prompt, req.shared_prefix_bytes)

    def _publish_blocks(self, req: worker_pb2.GenerateRequest, output: str) -> None:
        """For an engine without KV events: after a call, its cache holds the prompt and
        answer; index their blocks (under the call's salt, as the gateway hashes the next
        prompt). Not awaited."""
        if self._kv_index is None or self._translator is not None:
            return
        tokens, shared = self._prompt_tokens(req)
        hashes = prefix_block_hashes(tokens + self._tokenize(output), req.cache_salt,
                                     shared_tokens=shared)
        self._spawn(self._kv_index.publish(self.worker_id, hashes, time.time()))

    def _expect_blocks(self, rid: str, req: worker_pb2.GenerateRequest) -> None:
        """Tells the KV events translator which tenant the engine's next blocks may be."""
        if self._translator is None:
            return
        tokens, shared = self._prompt_tokens(req)
        self._translator.expect(rid, req.cache_salt, shared, tokens, time.time())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def Generate(self, request, context):
        remaining = context.time_remaining()
        if remaining is not None:
            GENERATION_DEADLINE.set(asyncio.get_running_loop().time() + remaining)
        generation = self._generate(request)
        # An RPC that ends while gRPC sends one of its chunks leaves this handler suspended
        # there until collected (a test saw 30 s under load): the generation is closed
        # then, as a cancelled call (its engine request aborted, its report made), in the
        # handler's context (its deadline: cut by it, or by its caller)
        context.add_done_callback(closer(generation, contextvars.copy_context(), self._reports))
        try:
            async with contextlib.aclosing(generation) as chunks:
                async for chunk in chunks:
                    yield chunk
        except GenerateRefused as exc:
            await context.abort(exc.code, exc.details)

    async def GenerateStream(self, request_iterator, context):
        batches = await agree_batches(context)
        replies = serve_generations(self._generate, request_iterator, self.generate_span,
                                    batches)
        # (as Generate's: its generations cancelled at the stream's end, not when collected)
        context.add_done_callback(closer(replies, contextvars.copy_context(), self._reports))
        async with contextlib.aclosing(replies):
            async for reply in replies:
                yield reply

    async def _generate(self, request: worker_pb2.GenerateRequest,
                        ) -> AsyncGenerator[worker_pb2.GenerateChunk, None]:
        """A call's chunks (Generate's, and each of GenerateStream's generations); raises
        GenerateRefused with the status to end with."""
        if not request.prompt and not request.input_ids:
            raise GenerateRefused(grpc.StatusCode.INVALID_ARGUMENT, "prompt and input_ids are empty")
        if request.sampling.n > 1:  # the gateway splits a request's n into calls of one each
            raise GenerateRefused(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"sampling.n is {request.sampling.n}: a generation is one "
                                  "sequence (send n generations)")
        rid = request.request_id or uuid.uuid4().hex
        engine_req = engine_request(request, rid)
        start = time.monotonic()
        streams = self._streams(request)
        meter = self.metrics.call(timed_tokens=streams)
        last: EngineOutput | None = None
        status = planner_pb2.COMPLETION_STATUS_FAILED
        self._running += 1
        self._idle.clear()
        ids = (request.program_id, request.call_id, request.attempt)
        self._calls.live[ids] += 1
        self._expect_blocks(rid, request)
        task = asyncio.current_task()
        if task is not None:
            self._waiting[rid] = task
        try:
            reported = 0
            output: list[str] = []
            unsent = 0  # deltas at the end of `output` not sent yet
            # closed with this generation (its caller stopped reading): the engine request
            # is aborted then, not whenever the engine's generator is collected
            async with contextlib.aclosing(self._engine.generate(engine_req, streams)) as outs:
                async for out in outs:
                    last = out
                    meter.output(out)
                    every = self.progress_every_tokens
                    if every and not out.finished and out.completion_tokens - reported >= every:
                        reported = out.completion_tokens
                        self._progress(request, reported)
                    if out.delta:
                        output.append(out.delta)
                        unsent += 1
                    # What arrived together goes as one message; the last text with the result
                    # (all of it for a caller that takes the answer whole).
                    if unsent and not out.more and not out.finished and not request.whole:
                        yield worker_pb2.GenerateChunk(delta="".join(output[-unsent:]))
                        unsent = 0
            self._waiting.pop(rid, None)  # answered: nothing left to cut
            if last is None or not last.finished:
                raise EngineError("engine stream ended without a finished response")
            if last.finish_reason == "abort":
                raise EngineError("engine aborted the request")
            self.simulated = self.simulated or last.simulated
            service_s = last.e2e_latency if last.e2e_latency is not None else time.monotonic() - start
            status = planner_pb2.COMPLETION_STATUS_OK
            ended = time.monotonic()
            result = worker_pb2.GenerateResult(
                finish_reason=last.finish_reason or "", worker_id=self.worker_id,
                service_s=service_s, simulated=last.simulated,
                usage=common_pb2.Usage(prompt_tokens=last.prompt_tokens,
                                       completion_tokens=last.completion_tokens,
                                       cached_tokens=last.cached_tokens),
                logprobs=token_logprobs(last) if request.return_logprob else (),
                stop_string=last.stop_string,
            )
            try:
                yield worker_pb2.GenerateChunk(
                    delta="".join(output[-unsent:]) if unsent else "", result=result)
            finally:
                # after the result is on its way, not before (off the call's path): the
                # caller resumes this generator once it has sent the result (Generate, and
                # GenerateStream's generations), or closes it; either way this runs while
                # the call is still `known_calls`' (running), before the end below
                meter.ok(last, ended)
                if not self.drop_reports:
                    self._calls.report(request, status, last, service_s)
                self._publish_blocks(request, "".join(output))
        except (asyncio.CancelledError, GeneratorExit) as exc:
            # cancelled, or closed at a chunk (Generate's `closer`): its caller stopped reading
            if rid in self._hung and isinstance(exc, GeneratorExit):
                # the hung engine's cut reached the RPC while gRPC sent one of its chunks:
                # the RPC ended there and its end closed this generation at the chunk
                self._calls.report(request, status, last, time.monotonic() - start)  # FAILED
                meter.failed(grpc.StatusCode.UNAVAILABLE.name)
                log.warning("engine hung: call cut", call_id=request.call_id)
                raise
            if (isinstance(exc, asyncio.CancelledError) and rid in self._hung
                    and task is not None and task.uncancel() == 0):
                self._calls.report(request, status, last, time.monotonic() - start)  # FAILED
                meter.failed(grpc.StatusCode.UNAVAILABLE.name)
                log.warning("engine hung: call cut", call_id=request.call_id)
                raise GenerateRefused(grpc.StatusCode.UNAVAILABLE,
                                      f"worker {self.worker_id}: engine {self._engine.base_url} "
                                      "failed its health check (hung)") from None
            if status != planner_pb2.COMPLETION_STATUS_OK:  # (answered: reported above)
                if cut_by_its_deadline():  # the engine request aborted: its time ran out
                    status = planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED
                    meter.failed(grpc.StatusCode.DEADLINE_EXCEEDED.name)
                else:  # the client aborted the engine request
                    status = planner_pb2.COMPLETION_STATUS_CANCELLED
                    meter.failed(CANCELLED)
                self._calls.report(request, status, last, time.monotonic() - start)
            raise
        except EngineError as exc:
            self._calls.report(request, status, last, time.monotonic() - start)
            code = _ENGINE_STATUS.get(type(exc), grpc.StatusCode.INTERNAL)
            meter.failed(code.name)
            log.warning("engine error", call_id=request.call_id, error=str(exc))
            raise GenerateRefused(code, f"worker {self.worker_id}: {exc}") from exc
        finally:
            self._waiting.pop(rid, None)
            self._hung.discard(rid)
            self._running -= 1
            if not self._running:
                self._idle.set()
            self._calls.live[ids] -= 1
            if self._calls.live[ids] <= 0:
                del self._calls.live[ids]
            if self._translator is not None:
                self._translator.finish(rid, time.time())
            if status == planner_pb2.COMPLETION_STATUS_OK:
                self._completed += 1
            else:
                self._failed += 1

    def _streams(self, request: worker_pb2.GenerateRequest) -> bool:
        """Whether the engine streams the call's tokens. Not for a call taken whole that
        no progress report can come from (one sample of fewer tokens than
        `progress_every_tokens`) and whose engine request no span here times (its first
        token): the engine answers once, one HTTP write and read instead of one per token."""
        sp, every = request.sampling, self.progress_every_tokens
        short = not every or (sp.HasField("max_new_tokens") and sp.max_new_tokens < every)
        return not (request.whole and short and sp.n <= 1 and not recording())

    async def Stats(self, request, context):
        stats = worker_pb2.WorkerStats(
            worker_id=self.worker_id, engine_url=self._engine.base_url, running=self._running,
            completed=self._completed, failed=self._failed, simulated=self.simulated,
            model=self._model,
        )
        if self._kv_events is not None:
            tr, ls = self._kv_events.translator, self._kv_events.stats
            stats.kv_index_source = "events"
            stats.kv_index_blocks = tr.index_blocks
            stats.kv_event_batches = ls.batches
            stats.kv_event_gaps = ls.gaps
            stats.kv_blocks_unattributed = tr.stats.unattributed
        elif self._kv_index is not None:
            stats.kv_index_source = "completion"
            with contextlib.suppress(Exception):  # Redis trouble: the size stays unknown (0)
                stats.kv_index_blocks = await asyncio.wait_for(
                    self._kv_index.size(self.worker_id), 0.5)
        return stats

    async def drain_reports(self) -> None:
        """Until the calls streaming now have ended (a call's report is made as its generator
        ends, which can be after its caller has the result) and every report is through;
        each step at most 3 s."""
        await self.drained(3.0)
        await self._calls.drain(3.0)
        if self._reports:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._reports, return_exceptions=True), 3.0)
