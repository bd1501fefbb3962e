"""Telling the planner how a call the gateway ran ended, when no normal completion report
will (gateway/execution.py): it failed for good, or its caller went away holding a grant.
Reports not awaited run as background tasks kept here."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc

from ostinato.v1 import planner_pb2, planner_pb2_grpc

REPORT_S = 2.0  # how long a report of the gateway's, or the end of the program, may take
# The end of a one-call program whose failure report was not answered in time: the planner
# ends it once its calls have settled (the worker's own report in, or its end grace over).
END_UNREPORTED_S = 15.0


class OutcomeReports:
    def __init__(self, planner: planner_pb2_grpc.PlannerStub) -> None:
        self._planner = planner
        self._background: set[asyncio.Task[None]] = set()  # not awaited (charges, reports)

    async def failed(self, admit: planner_pb2.AdmitRequest, grant: planner_pb2.Grant,
                     status: planner_pb2.CompletionStatus = planner_pb2.COMPLETION_STATUS_FAILED) -> None:
        """The call failed for good on `grant`'s worker (`status`: FAILED, or
        DEADLINE_EXCEEDED when its deadline cut it). A one-call program ends with it
        (the planner leaves a failed call's program open for a retry), and so does one the
        call registered (an HTTP request's new conversation: its caller was never told of
        it, so nobody could continue or end it)."""
        report = planner_pb2.CompletionReport(
            program_id=admit.program_id, call_id=admit.call_id, worker_id=grant.worker_id,
            status=status, attempt=grant.attempt, granted=True,
        )
        # If this fails, the planner still gets the worker's own report.
        try:
            await self._planner.ReportCompletion(report, timeout=REPORT_S)
        except grpc.aio.AioRpcError:
            reported = False
        else:
            reported = True
        if admit.end_program_after or admit.HasField("register_program"):
            end = self._end(admit.tenant, admit.program_id,
                            REPORT_S if reported else END_UNREPORTED_S)
            if reported:
                await end
            else:  # ended all the same (it was left open: CI, a loaded planner's late answer),
                self.spawn(end)  # in the background: the caller's error is not held up

    def end(self, tenant: str, program_id: str) -> None:
        """Ends the program in the background, best effort (one nobody else can end)."""
        self.spawn(self._end(tenant, program_id, END_UNREPORTED_S))

    async def _end(self, tenant: str, program_id: str, timeout_s: float) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._planner.EndProgram(planner_pb2.EndProgramPlannerRequest(
                tenant=tenant, program_id=program_id), timeout=timeout_s)

    def spawn(self, coro: Any) -> None:
        """Runs `coro` in the background, kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def gone(self, admit: planner_pb2.AdmitRequest, attempt: int = 0, worker_id: str = "",
             status: planner_pb2.CompletionStatus = planner_pb2.COMPLETION_STATUS_CANCELLED) -> None:
        """Our caller went away (`status` CANCELLED), or its deadline passed (DEADLINE_EXCEEDED),
        holding a grant, or perhaps holding one (`attempt` 0: whichever attempt runs): the
        planner ends the call and frees its worker's slot, whether or not the worker ever
        started it (the worker's own report, if any, is a repeat the planner ignores). Not
        awaited: the caller's task is being cancelled."""
        report = planner_pb2.CompletionReport(
            program_id=admit.program_id, call_id=admit.call_id, worker_id=worker_id,
            status=status, attempt=attempt, granted=bool(attempt))

        async def send() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self._planner.ReportCompletion(report, timeout=2.0)

        self.spawn(send())
