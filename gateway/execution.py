"""Running one call through the mesh: planner Admit, then the granted worker's Generate stream.

Shared by interactive calls and declared programs. Failures surface as CallFailed with
the gRPC status to return.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from cache.answers import Answer, AnswerCache
from cache.block_hash import Tokenize, prefix_block_hashes, tokenize_prompt
from cache.fingerprint import deterministic, exact_digest, semantic_key
from cache.modes import CacheMode, CachePolicy, InvalidCachePolicy, from_proto
from cache.tenancy import Tenancy
from gateway.calls import render_prompt
from gateway.worker_channels import WorkerChannels
from ostinato.retry import with_retry
from ostinato.tokenizers import load_tokenizer
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2


class CallFailed(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Delta:
    text: str
    cache_hit: int = common_pb2.CACHE_HIT_MISS  # set when the text comes from the answer cache


def cache_salt(tenant: str) -> str:
    """The prefix-cache namespace of a tenant: derived here, never taken from the client."""
    return "tenant:" + tenant


_HIT = {"exact": common_pb2.CACHE_HIT_EXACT, "semantic": common_pb2.CACHE_HIT_SEMANTIC}


class CallExecutor:
    def __init__(self, planner: planner_pb2_grpc.PlannerStub, workers: WorkerChannels,
                 cache: AnswerCache | None = None,
                 cache_default: CachePolicy | None = None,
                 tenancy: Callable[[], Tenancy] = Tenancy,
                 tokenize: Tokenize | None = None) -> None:
        """`tokenize`: the served model's tokenizer, for the KV index's block hashes."""
        self._planner = planner
        self._tokenize = tokenize or load_tokenizer("sim")
        self._workers = workers
        self._cache = cache
        self._cache_default = cache_default or CachePolicy(CacheMode.OFF)
        self._tenancy = tenancy

    def cache_policy(self, call: common_pb2.CallSpec) -> CachePolicy:
        """The call's cache policy; raises CallFailed(INVALID_ARGUMENT) for a bad one."""
        try:
            return from_proto(call.cache, self._cache_default)
        except InvalidCachePolicy as exc:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc

    async def _report_failure(self, program_id: str, call_id: str, worker_id: str) -> None:
        report = planner_pb2.CompletionReport(
            program_id=program_id, call_id=call_id, worker_id=worker_id,
            status=planner_pb2.COMPLETION_STATUS_FAILED,
        )
        # If this fails, the planner still gets the worker's own report.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._planner.ReportCompletion(report, timeout=2.0)

    async def run(
        self, tenant: str, program_id: str, call: common_pb2.CallSpec, timeout_s: float
    ) -> AsyncIterator[Delta | common_pb2.CallResult]:
        """Yields Deltas, then one CallResult. `call` must be normalized already.

        Answered from the cache when the call's policy allows and an entry matches (the
        planner records the call as done, so later calls may depend on it); otherwise run
        through the mesh, and a finished answer is stored for the next caller.
        """
        start = time.monotonic()
        policy = self.cache_policy(call)
        exact = exact_digest(tenant, call) if (
            policy.mode is not CacheMode.OFF and deterministic(call)) else None
        semantic = semantic_key(tenant, call) if policy.mode is CacheMode.SEMANTIC else None
        if self._cache is not None and (exact or semantic):
            hit = await self._cache.lookup(tenant, exact, semantic, policy.threshold)
            if hit is not None:
                await self._record_cached(tenant, program_id, call, timeout_s)
                yield Delta(hit.answer.text, _HIT[hit.kind])
                yield common_pb2.CallResult(
                    call_id=call.call_id, text=hit.answer.text,
                    finish_reason=hit.answer.finish_reason,
                    usage=common_pb2.Usage(prompt_tokens=hit.answer.prompt_tokens,
                                           completion_tokens=hit.answer.completion_tokens),
                    cache_hit=_HIT[hit.kind],
                    timings=common_pb2.CallTimings(total_s=time.monotonic() - start))
                return
        final: common_pb2.CallResult | None = None
        async for item in self._run(tenant, program_id, call, timeout_s, start):
            if isinstance(item, common_pb2.CallResult):
                final = item
            yield item
        if (self._cache is not None and final is not None and (exact or semantic)
                and final.finish_reason in ("stop", "length")):
            await self._cache.store(tenant, exact, semantic, Answer(
                final.text, final.finish_reason, final.usage.prompt_tokens,
                final.usage.completion_tokens))

    async def _record_cached(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                             timeout_s: float) -> None:
        admit = planner_pb2.AdmitRequest(
            tenant=tenant, program_id=program_id, call_id=call.call_id, thread_id=call.thread_id,
            parent_call_ids=call.parent_call_ids, served_from_cache=True)
        try:
            await with_retry(self._planner.Admit, admit, timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise CallFailed(exc.code(), exc.details() or "planner error") from exc

    async def _run(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                   timeout_s: float, start: float) -> AsyncIterator[Delta | common_pb2.CallResult]:
        prompt = render_prompt(call)
        salt = cache_salt(tenant)
        shared = self._tenancy().shared_bytes(prompt)
        tokens, shared_tokens = tokenize_prompt(self._tokenize, prompt, shared)
        admit = planner_pb2.AdmitRequest(
            tenant=tenant, program_id=program_id, call_id=call.call_id, thread_id=call.thread_id,
            parent_call_ids=call.parent_call_ids, prompt_tokens=max(1, len(tokens)),
            max_new_tokens=call.sampling.max_new_tokens, hints=call.hints,
            prefix_hashes=prefix_block_hashes(tokens, salt, shared_tokens=shared_tokens),
        )
        try:
            # Through a planner restart: the planner recognizes a re-admitted call.
            grant = await with_retry(self._planner.Admit, admit, timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise CallFailed(exc.code(), exc.details() or "planner error") from exc
        queued = time.monotonic() - start
        remaining = max(0.001, timeout_s - queued)
        stream = self._workers.stub(grant.worker_address).Generate(
            worker_pb2.GenerateRequest(
                request_id=f"{program_id}-{call.call_id}-{uuid.uuid4().hex[:8]}", tenant=tenant,
                program_id=program_id, call_id=call.call_id, priority=grant.priority,
                prompt=prompt, sampling=call.sampling, cache_salt=salt,
                shared_prefix_bytes=shared,
            ),
            timeout=remaining,
        )
        parts: list[str] = []
        final: worker_pb2.GenerateResult | None = None
        try:
            async for chunk in stream:
                if chunk.HasField("result"):
                    final = chunk.result
                elif chunk.delta:
                    parts.append(chunk.delta)
                    yield Delta(chunk.delta)
        except grpc.aio.AioRpcError as exc:
            await self._report_failure(program_id, call.call_id, grant.worker_id)
            raise CallFailed(exc.code(), exc.details() or "worker error") from exc
        finally:
            stream.cancel()  # no-op once finished; stops the worker if our caller went away
        if final is None:
            await self._report_failure(program_id, call.call_id, grant.worker_id)
            raise CallFailed(grpc.StatusCode.INTERNAL, "worker stream ended without a result")
        total = time.monotonic() - start
        yield common_pb2.CallResult(
            call_id=call.call_id, text="".join(parts), finish_reason=final.finish_reason,
            usage=final.usage, worker_id=final.worker_id, cache_hit=common_pb2.CACHE_HIT_MISS,
            timings=common_pb2.CallTimings(queue_s=queued, engine_s=final.service_s, total_s=total),
            priority=grant.priority, simulated=final.simulated,
        )
