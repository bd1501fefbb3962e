"""The planner servicer's translations: the core's errors to gRPC statuses, its grants and
programs to protos, completion statuses to call states."""

from __future__ import annotations

import grpc

from ostinato.v1 import common_pb2, planner_pb2
from planner.admit_stream import AdmitRefused
from planner.core import (
    CallState,
    DeadlineExceeded,
    DuplicateCall,
    Grant,
    NoSuchCall,
    Overloaded,
    PlannerError,
    ProgramClosed,
    ProgramIdInUse,
    UnknownParent,
    UnknownProgram,
    WorkerState,
)

STATUS_FOR = {
    UnknownProgram: grpc.StatusCode.NOT_FOUND,
    NoSuchCall: grpc.StatusCode.NOT_FOUND,
    DuplicateCall: grpc.StatusCode.ALREADY_EXISTS,
    ProgramIdInUse: grpc.StatusCode.ALREADY_EXISTS,  # until its ended run's calls report
    UnknownParent: grpc.StatusCode.INVALID_ARGUMENT,
    ProgramClosed: grpc.StatusCode.FAILED_PRECONDITION,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

COMPLETION_STATE = {
    planner_pb2.COMPLETION_STATUS_OK: (CallState.DONE, "ok"),
    planner_pb2.COMPLETION_STATUS_FAILED: (CallState.FAILED, "failed"),
    planner_pb2.COMPLETION_STATUS_CANCELLED: (CallState.CANCELLED, "cancelled"),
    # failed (the program's summary counts it so), counted apart; no retry would help
    planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED: (CallState.FAILED, "deadline_exceeded"),
}
UNKNOWN_COMPLETION = (CallState.FAILED, "failed")  # a status added after this planner
# Ends that a call's caller side reports (the gateway: its caller went away, its deadline
# passed) while its worker may still be running it: the worker's report of what it used
# follows (planner/core/reports.py `cut`)
CUT = frozenset({planner_pb2.COMPLETION_STATUS_CANCELLED,
                 planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED})


def status_for(exc: PlannerError) -> grpc.StatusCode:
    return STATUS_FOR.get(type(exc), grpc.StatusCode.INTERNAL)


async def abort_for(context: grpc.aio.ServicerContext, exc: PlannerError) -> None:
    await context.abort(status_for(exc), str(exc))


def refused(exc: PlannerError) -> AdmitRefused:
    """`exc` as an admission's end; final where no retry can change it (a program past its
    deadline does not come back)."""
    return AdmitRefused(status_for(exc), str(exc), final=isinstance(exc, DeadlineExceeded))


def grant_proto(grant: Grant, calls_waiting: int = 0,
                next_worker: WorkerState | None = None) -> planner_pb2.Grant:
    """`next_worker`: where a fresh call would start next (PlannerCore.next_fresh_worker)."""
    return planner_pb2.Grant(
        call_id=grant.call_id, worker_id=grant.worker_id, worker_address=grant.worker_address,
        priority=grant.priority, queued_s=grant.queued_s, matched_blocks=grant.matched_blocks,
        parked_s=grant.parked_s, attempt=grant.attempt, calls_waiting=calls_waiting,
        next_worker_id=next_worker.worker_id if next_worker is not None else "",
        next_worker_address=next_worker.address if next_worker is not None else "",
    )


def summary_proto(program, now: float) -> common_pb2.ProgramSummary:  # type: ignore[no-untyped-def]
    calls = program.calls.values()
    return common_pb2.ProgramSummary(
        program_id=program.program_id,
        tenant=program.tenant,
        calls_completed=sum(1 for c in calls if c.state is CallState.DONE),
        calls_failed=sum(1 for c in calls if c.state is CallState.FAILED),
        calls_cancelled=sum(1 for c in calls if c.state is CallState.CANCELLED),
        calls_running=sum(1 for c in calls if c.state is CallState.RUNNING),
        usage=common_pb2.Usage(
            prompt_tokens=sum(c.prompt_tokens_used for c in calls),
            completion_tokens=sum(c.completion_tokens for c in calls),
            cached_tokens=sum(c.cached_tokens for c in calls),
            reasoning_tokens=sum(c.reasoning_tokens for c in calls),
        ),
        attained_service_s=program.attained_service_s,
        elapsed_s=now - program.created_at,
    )
