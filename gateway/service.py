"""The Gateway gRPC servicer: authenticate, validate, then run calls through the mesh."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import grpc
import structlog

from cache.answers import AnswerCache
from gateway.auth import ApiKeyAuthenticator, Unauthenticated, api_key_from_metadata
from gateway.calls import CallLimits, InvalidCall, normalize_call
from gateway.dag import InvalidDag, fill_templates, topological_order
from gateway.execution import CallExecutor, CallFailed, Delta
from ostinato.config import GatewayConfig
from ostinato.retry import with_retry
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, planner_pb2, planner_pb2_grpc

log = structlog.get_logger(__name__)


def _with_id(options: common_pb2.ProgramOptions) -> common_pb2.ProgramOptions:
    """Names the program here, so a registration retried through a planner restart is
    recognized instead of creating a second program."""
    if options.program_id:
        return options
    named = common_pb2.ProgramOptions()
    named.CopyFrom(options)
    named.program_id = uuid.uuid4().hex
    return named


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    def __init__(
        self,
        config: GatewayConfig,
        auth: ApiKeyAuthenticator,
        planner: planner_pb2_grpc.PlannerStub,
        executor: CallExecutor,
        cache: AnswerCache | None = None,
    ) -> None:
        self._config = config
        self._auth = auth
        self._planner = planner
        self._executor = executor
        self._cache = cache
        self._limits = CallLimits(config.max_prompt_chars, config.max_messages,
                                  config.default_max_new_tokens, config.max_new_tokens_limit)

    async def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        try:
            return self._auth.tenant_for(api_key_from_metadata(context.invocation_metadata()))
        except Unauthenticated as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # unreachable: abort raises

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        limit = self._config.call_timeout_s
        return limit if remaining is None else max(0.001, min(limit, remaining))

    async def _planner_call(self, context, rpc, request):  # type: ignore[no-untyped-def]
        try:
            return await with_retry(rpc, request, budget_s=30.0, attempt_timeout_s=10.0)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "planner error")

    async def StartProgram(self, request, context):
        tenant = await self._tenant(context)
        resp = await self._planner_call(
            context, self._planner.RegisterProgram,
            planner_pb2.RegisterProgramRequest(tenant=tenant, options=_with_id(request.options)),
        )
        log.info("program started", program_id=resp.program_id, tenant=tenant)
        return gateway_pb2.StartProgramResponse(program_id=resp.program_id, tenant=tenant)

    async def EndProgram(self, request, context):
        tenant = await self._tenant(context)
        if not request.program_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "program_id is required")
        summary = await self._planner_call(
            context, self._planner.EndProgram,
            planner_pb2.EndProgramPlannerRequest(tenant=tenant, program_id=request.program_id),
        )
        return gateway_pb2.EndProgramResponse(summary=summary)

    async def CacheStats(self, request, context):
        await self._tenant(context)
        if self._cache is None:
            return gateway_pb2.CacheStatsResponse(enabled=False)
        m = self._cache.metrics
        return gateway_pb2.CacheStatsResponse(
            enabled=True, redis_up=m.redis_up, counts=dict(m.counts),
            index_entries=len(self._cache.index), lookup_ms_p50=m.percentile_ms(0.5),
            lookup_ms_p99=m.percentile_ms(0.99), server_vector_search=self._cache.vector_search)

    async def Call(self, request, context):
        tenant = await self._tenant(context)
        if not request.program_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "program_id is required")
        try:
            call = normalize_call(request.call, self._limits)
        except InvalidCall as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            async for item in self._executor.run(tenant, request.program_id, call,
                                                 self._timeout(context)):
                if isinstance(item, Delta):
                    yield gateway_pb2.CallChunk(call_id=call.call_id, delta=item.text)
                else:
                    yield gateway_pb2.CallChunk(call_id=call.call_id, result=item)
        except CallFailed as exc:
            await context.abort(exc.code, exc.message)

    async def RunProgram(self, request, context):
        tenant = await self._tenant(context)
        try:
            order = topological_order(request.nodes)
            nodes = {}
            for n in request.nodes:
                spec = common_pb2.CallSpec()
                spec.CopyFrom(n.call)
                spec.call_id = n.id
                spec.thread_id = spec.thread_id or n.id
                del spec.parent_call_ids[:]
                spec.parent_call_ids.extend(n.depends_on)
                nodes[n.id] = normalize_call(spec, self._limits)
        except (InvalidDag, InvalidCall) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        started = await self._planner_call(
            context, self._planner.RegisterProgram,
            planner_pb2.RegisterProgramRequest(tenant=tenant, options=_with_id(request.options)),
        )
        program_id = started.program_id
        events: asyncio.Queue[gateway_pb2.ProgramEvent | CallFailed] = asyncio.Queue()
        outputs: dict[str, str] = {}
        done = {node_id: asyncio.Event() for node_id in order}
        timeout = self._timeout(context)

        async def run_node(node_id: str) -> None:
            call = nodes[node_id]
            for parent in call.parent_call_ids:
                await done[parent].wait()
            call = fill_templates(call, outputs)
            try:
                async for item in self._executor.run(tenant, program_id, call, timeout):
                    if isinstance(item, Delta):
                        events.put_nowait(gateway_pb2.ProgramEvent(
                            program_id=program_id,
                            node_delta=gateway_pb2.NodeDelta(node_id=node_id, delta=item.text)))
                    else:
                        outputs[node_id] = item.text
                        events.put_nowait(gateway_pb2.ProgramEvent(
                            program_id=program_id,
                            node_finished=gateway_pb2.NodeFinished(node_id=node_id, result=item)))
            except CallFailed as exc:
                events.put_nowait(CallFailed(exc.code, f"node {node_id!r}: {exc.message}"))
                return
            done[node_id].set()

        tasks = [asyncio.create_task(run_node(node_id)) for node_id in order]
        try:
            finished = 0
            while finished < len(order):
                event = await events.get()
                if isinstance(event, CallFailed):
                    await context.abort(event.code, event.message)
                if event.HasField("node_finished"):
                    finished += 1
                yield event
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(grpc.aio.AioRpcError):
                summary = await self._planner.EndProgram(
                    planner_pb2.EndProgramPlannerRequest(tenant=tenant, program_id=program_id),
                    timeout=5.0)
        yield gateway_pb2.ProgramEvent(program_id=program_id, program_finished=summary)
