"""Running one call through the mesh: planner Admit, then the granted worker's Generate stream.

Shared by interactive calls and declared programs. Failures surface as CallFailed with
the gRPC status to return.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from cache.block_hash import text_block_hashes
from gateway.calls import estimate_tokens, render_prompt
from gateway.worker_channels import WorkerChannels
from ostinato.retry import with_retry
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2


class CallFailed(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Delta:
    text: str


def cache_salt(tenant: str) -> str:
    """The prefix-cache namespace of a tenant: derived here, never taken from the client."""
    return "tenant:" + tenant


class CallExecutor:
    def __init__(self, planner: planner_pb2_grpc.PlannerStub, workers: WorkerChannels) -> None:
        self._planner = planner
        self._workers = workers

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
        """Yields Deltas, then one CallResult. `call` must be normalized already."""
        start = time.monotonic()
        prompt = render_prompt(call)
        admit = planner_pb2.AdmitRequest(
            tenant=tenant, program_id=program_id, call_id=call.call_id, thread_id=call.thread_id,
            parent_call_ids=call.parent_call_ids, prompt_tokens=estimate_tokens(prompt),
            max_new_tokens=call.sampling.max_new_tokens, hints=call.hints,
            prefix_hashes=text_block_hashes(prompt, salt=cache_salt(tenant)),
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
                prompt=prompt, sampling=call.sampling, cache_salt=cache_salt(tenant),
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
