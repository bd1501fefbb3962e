"""The gateway's report of a call that failed for good, and the end of its one-call
program: the end is sent even when the report was not answered in time (CI 2026-12-06: a
loaded planner's late answer left the program open, and the fuzz test found it open)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from gateway.outcome_reports import OutcomeReports
from ostinato.v1 import planner_pb2


class _Planner:
    def __init__(self, report_fails: bool) -> None:
        self.report_fails = report_fails
        self.sent: list[str] = []
        self.ended = asyncio.Event()

    async def ReportCompletion(self, report: Any, timeout: float) -> None:
        self.sent.append("report")
        if self.report_fails:
            raise grpc.aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), "Deadline Exceeded")

    async def EndProgram(self, request: Any, timeout: float) -> None:
        self.sent.append(f"end {request.program_id}")
        self.ended.set()


@pytest.mark.parametrize("report_fails", [False, True], ids=["reported", "report-failed"])
@pytest.mark.parametrize(("one_call", "ended"), [(True, True), (False, False)])
async def test_a_one_call_programs_failure_ends_it_even_unreported(
        report_fails: bool, one_call: bool, ended: bool) -> None:
    planner = _Planner(report_fails)
    reports = OutcomeReports(planner)  # type: ignore[arg-type]
    admit = planner_pb2.AdmitRequest(program_id="p", call_id="c", tenant="t",
                                     end_program_after=one_call)
    await reports.failed(admit, planner_pb2.Grant(worker_id="w", attempt=1))
    if ended:
        await asyncio.wait_for(planner.ended.wait(), 10)
    await asyncio.sleep(0)
    assert planner.sent == ["report", "end p"] if ended else ["report"]
