"""The Planner gRPC servicer: proto -> core -> proto, plus waking the callers it grants."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import uuid
from collections.abc import Callable, Mapping

import grpc
import structlog

from cache.kv_mirror import KvMirror
from ostinato.clock import Clock
from ostinato.deadlines import deadline_seconds
from ostinato.rpc_closing import closer
from ostinato.stream_tasks import agree_batches
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from planner.admit_stream import FINAL, AdmitRefused, serve_admissions
from planner.core import (
    CallState,
    Grant,
    NoSuchCall,
    PlannerCore,
    PlannerError,
    UnknownProgram,
)
from planner.core.model import CallRefused, Event
from planner.core.planner import grant_of
from planner.metrics import PlannerMetrics
from planner.program_endings import ProgramEndings
from planner.store import ProgramStore
from planner.translate import (
    COMPLETION_STATE,
    CUT,
    UNKNOWN_COMPLETION,
    abort_for,
    grant_proto,
    refused,
    status_for,
)
from planner.worker_rpcs import WorkerRpcs
from tracing.grpc_interceptors import SpanDescriber

log = structlog.get_logger(__name__)

class PlannerService(WorkerRpcs, planner_pb2_grpc.PlannerServicer):
    def __init__(self, core: PlannerCore, store: ProgramStore, clock: Clock,
                 kv_index: KvMirror | None = None, metrics: PlannerMetrics | None = None) -> None:
        self._core = core
        self.metrics = metrics if metrics is not None else PlannerMetrics(core)
        self._store = store
        self._clock = clock
        self._kv_index = kv_index
        self._waiters: dict[str, asyncio.Future[Grant]] = {}
        self._last_write: asyncio.Future[None] | None = None
        self.persist_timeout_s = 1.0
        self.kv_load_timeout_s = 0.5
        # EndProgram waits this long at most for the reports of calls still running: a
        # worker streams its last chunk to the gateway before its report reaches us.
        self.end_grace_s = 5.0
        self._reported = asyncio.Condition()
        self._ending: set[asyncio.Future[common_pb2.ProgramSummary]] = set()  # EndProgram's
        # Changes with every planner process: a worker that sees a new one sends its recent
        # completion reports again (the planner before may have died before saving them).
        self.instance = uuid.uuid4().hex
        # kept summaries (a retried EndProgram), one-call programs
        self._endings = ProgramEndings(core, clock, self._waiters)
        # AdmitStream's admissions get this span (the interceptor gives the unary Admit's)
        self.admit_span: SpanDescriber | None = None
        self.active: Callable[[], bool] = lambda: True  # planner HA: holds the lease

    def pump(self) -> None:
        """Dispatches what can start, wakes its Admit callers, and persists what changed."""
        grants = self._core.dispatch()
        self.metrics.granted_calls(grants)
        for grant in grants:
            waiter = self._waiters.pop(f"{grant.program_id}/{grant.call_id}", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(grant)
        events = self._core.take_events()
        if self._waiters:
            self._fail_refused(events)
        self._last_write = self._store.publish(events)

    def _fail_refused(self, events: list[Event]) -> None:
        """Waiting calls that failed before they started: their Admit callers hear why."""
        for event in events:
            if isinstance(event, CallRefused):
                call = event.call
                waiter = self._waiters.pop(f"{call.program_id}/{call.call_id}", None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(event.error)

    async def _persisted(self) -> None:
        """Waits (bounded) until everything pumped so far is in Redis: a grant is handed out
        only once a restarted planner would know the call is running. (Past
        `persist_timeout_s`, or at once while Redis is failing, it goes on regardless,
        unless the store holds its writes' waiters through an outage: planner HA.)"""
        if self._last_write is not None:
            if not self._last_write.done():
                self._store.hurry()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.persist_timeout_s):
                    await asyncio.shield(self._last_write)

    def _register(self, tenant: str, opts: common_pb2.ProgramOptions, program_id: str,
                  max_open: int, conversation: bool = False, registration: str = "",
                  declared: bool = False) -> bool:
        """Registers a program (idempotent for its tenant), or raises AdmitRefused; whether
        it was open already, by another registration than `registration` (the caller's id
        of it, the same on its retries). `conversation`: one that no caller ends
        (planner/core/programs.py)."""
        try:
            deadline = deadline_seconds(opts.deadline) if opts.HasField("deadline") else None
        except ValueError as exc:  # the gateway's rule (a planner's RPCs are reachable too)
            raise AdmitRefused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        try:
            opened_by: str | None = self._core.program(program_id, tenant).registration
        except PlannerError:
            opened_by = None
        try:
            self._core.register_program(
                program_id, tenant, deadline_s=deadline,
                reject_when_late=opts.reject_when_late, program_class=opts.program_class,
                max_open=max_open, conversation=conversation, registration=registration,
                declared=declared,
            )
        except PlannerError as exc:
            raise refused(exc) from exc
        return opened_by is not None and not (registration and opened_by == registration)

    async def RegisterProgram(self, request, context):
        program_id = request.options.program_id or uuid.uuid4().hex
        try:
            already_open = self._register(request.tenant, request.options, program_id,
                                          request.max_open_programs,
                                          registration=request.registration,
                                          declared=request.declared)
        except AdmitRefused as exc:
            await context.abort(exc.code, exc.details)
        self.pump()
        # answered once a restarted planner would know the program: the soak lost three
        # programs registered ~100 ms before a planner kill (every later call NOT_FOUND)
        await self._persisted()
        return planner_pb2.RegisterProgramResponse(program_id=program_id,
                                                 already_open=already_open)

    def _kv_matches(self, request: planner_pb2.AdmitRequest) -> Mapping[str, int] | None:
        """Per worker, the leading prompt blocks its engine holds (the planner's copy of the
        KV-reference index: no round trip); None without an index or a copy loaded."""
        if self._kv_index is None or request.served_from_cache or not request.prefix_hashes:
            return None
        workers = [w.worker_id for w in self._core.workers]
        return self._kv_index.longest_prefixes(workers, request.prefix_hashes)

    async def Admit(self, request, context):
        try:
            return await self._admit(request)
        except AdmitRefused as exc:
            await context.abort(exc.code, exc.details,
                                trailing_metadata=((FINAL, "1"),) if exc.final else ())

    async def AdmitStream(self, request_iterator, context):
        batches = await agree_batches(context)
        replies = serve_admissions(self._admit, request_iterator, self.admit_span, self.active,
                                   batches)
        # a stream that ends while gRPC sends one of its replies: its admissions are
        # cancelled then, not when the handler is collected (ostinato/rpc_closing.py)
        context.add_done_callback(closer(replies, contextvars.copy_context()))
        async with contextlib.aclosing(replies):
            async for reply in replies:
                yield reply

    async def _admit(self, request: planner_pb2.AdmitRequest) -> planner_pb2.Grant:
        """Admit's work (for the unary RPC and each AdmitStream admission): the grant, or
        AdmitRefused with the status to end with."""
        key = f"{request.program_id}/{request.call_id}"
        fresh = False  # this admission opened the program
        if request.HasField("register_program"):
            opts = request.register_program
            if opts.program_id and opts.program_id != request.program_id:
                raise AdmitRefused(grpc.StatusCode.INVALID_ARGUMENT,
                                   "register_program.program_id differs from program_id")
            if not request.program_id:
                raise AdmitRefused(grpc.StatusCode.INVALID_ARGUMENT, "program_id is required")
            # registered by its first call and not ended after it: the gateway's program for
            # a conversation (requests that name no program), which no caller ends
            fresh = not self._register(request.tenant, opts, request.program_id,
                                       request.max_open_programs,
                                       conversation=not request.end_program_after)
        if request.end_program_after:
            self._endings.one_call[request.program_id] = request.tenant
        kv_matches = self._kv_matches(request)
        try:
            call = self._core.submit(
                request.program_id, request.tenant, request.call_id,
                thread_id=request.thread_id, parents=request.parent_call_ids,
                prompt_tokens=request.prompt_tokens, max_new_tokens=request.max_new_tokens,
                expected_output=request.hints.expected_output_tokens,
                prefix_hashes=request.prefix_hashes, kv_matches=kv_matches,
                served_from_cache=request.served_from_cache,
                retry_of_attempt=request.retry_of_attempt,
                exclude_workers=request.exclude_workers, resend=request.resend,
                started_on=request.started_on, started_priority=request.started_priority,
            )
        except PlannerError as exc:
            if request.end_program_after:  # the one-call program's only call was refused
                self._endings.end_one_call(request.program_id)
                self.pump()
            elif fresh:  # a conversation opened for a first call that was refused: no
                self._end_unused(request.program_id, request.tenant)  # program left behind
            raise self._reject(request.tenant, exc) from exc
        if call.attempt > 1 and call.state is not CallState.RUNNING:
            log.info("call retried", program_id=call.program_id, call_id=call.call_id,
                     attempt=call.attempt, avoiding=sorted(call.excluded))
        if call.state is CallState.DONE:  # served from the gateway's cache: recorded only
            self.metrics.recorded.labels(request.tenant).inc()
            self._endings.end_one_call(request.program_id)
            self.pump()
            return planner_pb2.Grant(call_id=call.call_id)
        if call.state is CallState.RUNNING:  # re-admitted after a planner restart
            log.info("grant re-sent after restart", program_id=call.program_id, call_id=call.call_id)
            return grant_proto(grant_of(call), self._core.queued, self._core.next_fresh_worker())
        waiter: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        self.metrics.admitted.labels(request.tenant).inc()
        self.pump()
        try:
            grant = await waiter
            # A grant leaves once a restarted planner would know the call runs (its worker's
            # report then finds it); not for a one-call program, whose summary nobody asks
            # for: its records are written behind, off the call's path.
            if not request.end_program_after:
                await self._persisted()
        except PlannerError as exc:  # the program ended while this call waited
            raise self._reject(request.tenant, exc) from exc
        except asyncio.CancelledError:
            # The caller went away: drop the call, or free the worker it was just given.
            self.metrics.cancelled.labels(request.tenant).inc()
            self._waiters.pop(key, None)
            self._core.cancel(request.program_id, request.call_id, call.attempt)
            self._endings.end_one_call(request.program_id)
            self.pump()
            raise
        return grant_proto(grant, self._core.queued, self._core.next_fresh_worker())

    def _end_unused(self, program_id: str, tenant: str) -> None:
        """Ends a program that has no call (its opening admission was refused): each load
        shed of a conversation's first request left one open, in memory and in Redis, for
        program_idle_ttl_s (overload review 2026-12-06: +95 programs for 30 shed calls)."""
        try:
            program = self._core.program(program_id, tenant)
        except PlannerError:
            return
        if not program.calls:
            self._endings.closed(self._core.end_program(program_id, tenant))
            self.pump()

    def _reject(self, tenant: str, exc: PlannerError) -> AdmitRefused:
        self.metrics.rejected.labels(tenant, status_for(exc).name).inc()
        return refused(exc)

    async def ReportCompletion(self, request, context):
        return await self._take_reports([request], context)

    async def ReportCompletions(self, request, context):
        return await self._take_reports(request.reports, context)

    async def _take_reports(self, reports, context) -> planner_pb2.ReportAck:  # type: ignore[no-untyped-def]
        """Takes completion reports in order (all refused if one has no status), pumps once,
        and acknowledges once they are saved. A status this planner does not know (a newer
        worker's or gateway's) is taken as FAILED, not refused with the batch's others."""
        for i, report in enumerate(reports):
            if report.status == planner_pb2.COMPLETION_STATUS_UNSPECIFIED:
                where = "" if len(reports) == 1 else f"reports[{i}]: "
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"{where}completion status is required")
        for report in reports:
            self._complete(report)
        self.pump()
        async with self._reported:
            self._reported.notify_all()
        # Acknowledged once saved (a repeated report waits too: its first may not be), so
        # that a planner killed before saving it gets the report again from the worker.
        await self._persisted()
        return planner_pb2.ReportAck()

    def _complete(self, report: planner_pb2.CompletionReport) -> None:
        """One report into the core (the caller pumps)."""
        state, status = COMPLETION_STATE.get(report.status, UNKNOWN_COMPLETION)
        late = self._core.awaits_usage(report.program_id, report.call_id)  # (counted before)
        # NoSuchCall: already finished (a repeated report, or the caller cancelled first),
        # or a report of an attempt that a retry replaced.
        try:
            self._core.complete(
                report.program_id, report.call_id, state=state,
                service_s=report.service_s if math.isfinite(report.service_s) else 0.0,
                prompt_tokens=report.usage.prompt_tokens,
                completion_tokens=report.usage.completion_tokens,
                cached_tokens=report.usage.cached_tokens,
                reasoning_tokens=report.usage.reasoning_tokens, attempt=report.attempt,
                cut=report.status in CUT, worker_id=report.worker_id,
                granted=report.granted,
            )
        except NoSuchCall:
            if report.usage.reasoning_tokens:  # the gateway's, after the worker's report
                self._core.thought(report.program_id, report.call_id, report.attempt,
                                   report.usage.reasoning_tokens)
            return
        if not late:
            self.metrics.completed.labels(report.worker_id, status).inc()
        # a failed call may be admitted again (by its gateway), not one its deadline cut
        if state is not CallState.FAILED or \
                report.status == planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED:
            self._endings.end_one_call(report.program_id)

    async def _settled(self, program_id: str, tenant: str) -> None:
        """Until no call of the program is running and every one cancelled while it ran
        has its worker's report (what it used: the summary counts it), or end_grace_s."""
        def settled() -> bool:
            try:
                program = self._core.program(program_id, tenant)
            except PlannerError:
                return True  # gone (or never there): end_program says which
            return not any(c.state is CallState.RUNNING or c.usage_to_come
                           for c in program.calls.values())

        async with self._reported:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reported.wait_for(settled), self.end_grace_s)

    async def ReportProgress(self, request, context):
        # NoSuchCall: the call finished (or was cancelled) while the report was in flight.
        with contextlib.suppress(NoSuchCall):
            self._core.progress(request.program_id, request.call_id, request.completion_tokens)
        return planner_pb2.ReportAck()

    async def EndProgram(self, request, context):
        # The end goes on if its caller gives up while the running calls settle: cut there,
        # it left the program closed (its calls refused) but open, holding a place under
        # its tenant's max_programs until idle (cancellation review F3: the SDK's end after
        # an error waits as long as this grace).
        ending = asyncio.ensure_future(self._end(request.program_id, request.tenant))
        self._ending.add(ending)
        ending.add_done_callback(self._ended)
        try:
            summary = await asyncio.shield(ending)
        except UnknownProgram as exc:
            # a retried EndProgram (its answer was lost): the same summary, kept here, or
            # rebuilt from the store when the planner that ended it is gone
            ended = self._endings.ended(request.tenant, request.program_id) \
                or await self._endings.in_store(self._store, request.tenant, request.program_id)
            if ended is not None:
                return ended
            await abort_for(context, exc)
        except PlannerError as exc:
            await abort_for(context, exc)
        await self._persisted()  # once the caller has the summary, Redis says "ended" too
        return summary

    def _ended(self, ending: asyncio.Future[common_pb2.ProgramSummary]) -> None:
        """An end done: forgotten, its error (its caller gone: nobody to tell) taken."""
        self._ending.discard(ending)
        if not ending.cancelled():
            ending.exception()

    async def _end(self, program_id: str, tenant: str) -> common_pb2.ProgramSummary:
        """No call of the program starts from now (its waiting ones fail at once), then its
        running ones get their while; then it ends, its summary kept for a retried end (an
        unknown program: end_program says)."""
        with contextlib.suppress(PlannerError):
            self._endings.closed(self._core.close_program(program_id, tenant))
            self.pump()
        await self._settled(program_id, tenant)
        summary = self._endings.summary(self._core.end_program(program_id, tenant))
        self.pump()
        return summary

    async def housekeeping(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            expired = self._core.expire()
            if expired:
                log.info("programs expired", count=len(expired))
                for program_id in expired:
                    self._endings.one_call.pop(program_id, None)
            self._follow_kv()  # workers the core dropped (expired) too
            self.pump()
