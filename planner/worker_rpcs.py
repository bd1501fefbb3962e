"""The Planner servicer's worker RPCs (a mixin of planner/service.py's PlannerService):
a worker's registration and heartbeat (its engine's health, the calls it knows, its KV
index followed), and its leaving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import structlog

from cache.kv_mirror import KvMirror
from ostinato.v1 import planner_pb2
from planner.core import PlannerCore
from planner.metrics import PlannerMetrics
from planner.program_endings import ProgramEndings

log = structlog.get_logger(__name__)


class WorkerRpcs:
    _core: PlannerCore
    _kv_index: KvMirror | None
    _endings: ProgramEndings
    _reported: asyncio.Condition
    metrics: PlannerMetrics
    instance: str
    kv_load_timeout_s: float
    pump: Callable[[], None]  # PlannerService's: dispatches, wakes callers, persists

    async def RegisterWorker(self, request, context):
        if not request.worker_id or not request.address:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_id and address are required")
        healthy = not request.engine_unhealthy
        known = self._core.worker(request.worker_id)
        was_healthy = None if known is None else known.healthy
        try:
            self._core.upsert_worker(
                request.worker_id, request.address, request.max_inflight or 1, request.simulated,
                healthy=healthy, kv_tokens=request.kv_tokens,
            )
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.worker_id in self._follow_kv():
            # a worker's first registration is answered once the planner's copy of its KV
            # index is loaded (bounded; not its heartbeats: Redis may be down): it routes on
            # what the worker's engine holds at once
            await self._kv_index.first_loaded(request.worker_id,  # type: ignore[union-attr]
                                              self.kv_load_timeout_s)
        if was_healthy is not False and not healthy:
            log.warning("worker unhealthy: no calls start there", worker_id=request.worker_id)
        elif was_healthy is False and healthy:
            log.info("worker healthy again", worker_id=request.worker_id)
        # The calls it knows, as of this planner process (it has sent us its recent reports)
        known = request.known_calls
        if request.HasField("known_calls") and known.planner_instance == self.instance:
            lost = self._core.reconcile_worker(request.worker_id, {
                (c.program_id, c.call_id, c.attempt) for c in known.calls})
            if lost:
                log.warning("unstarted grants ended: calls this worker never started or lost",
                            worker_id=request.worker_id, count=len(lost),
                            calls=[f"{c.program_id}/{c.call_id}#{c.attempt}" for c in lost[:20]])
                self.metrics.unstarted_grants.labels(request.worker_id).inc(len(lost))
                for call in lost:
                    self._endings.end_one_call(call.program_id)
                async with self._reported:  # EndProgram waits for no call to run
                    self._reported.notify_all()
        self.pump()
        return planner_pb2.WorkerAck(planner_instance=self.instance)

    async def DeregisterWorker(self, request, context):
        self._core.remove_worker(request.worker_id)
        self._follow_kv()
        return planner_pb2.WorkerAck()

    def _follow_kv(self) -> set[str]:
        """The KV-index copy follows the workers the core knows; returns those new to it."""
        if self._kv_index is None:
            return set()
        return self._kv_index.follow(w.worker_id for w in self._core.workers)

