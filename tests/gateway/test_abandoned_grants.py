"""A caller that leaves holding a grant (or as one is granted) frees its worker's slot: the
gateway tells the planner the call ended CANCELLED, since the worker, never reached,
would not. Under overload the mesh leaked every worker's budget this way."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import pytest

from gateway.call_items import CallFailed, Granted, NewProgram
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.v1 import common_pb2, planner_pb2


class Planner:
    """Grants at once (or fails the Admit with `admit_error`); records completion reports."""

    def __init__(self, admit_error: grpc.StatusCode | None = None) -> None:
        self.admit_error = admit_error
        self.reports: list[planner_pb2.CompletionReport] = []
        self.reported = asyncio.Event()

    async def Admit(self, request: planner_pb2.AdmitRequest, timeout: float) -> planner_pb2.Grant:
        if self.admit_error is not None:
            raise grpc.aio.AioRpcError(self.admit_error, grpc.aio.Metadata(), grpc.aio.Metadata())
        return planner_pb2.Grant(call_id=request.call_id, worker_id="w1",
                                 worker_address="127.0.0.1:1", attempt=1)

    async def ReportCompletion(self, report: planner_pb2.CompletionReport,
                               timeout: float) -> planner_pb2.ReportAck:
        self.reports.append(report)
        self.reported.set()
        return planner_pb2.ReportAck()


def _call() -> common_pb2.CallSpec:
    call = common_pb2.CallSpec(call_id="c1", thread_id="main")
    call.messages.add(role="user", content="hello")
    call.sampling.max_new_tokens = 4
    return call


def _executor(planner: Any) -> CallExecutor:
    return CallExecutor(planner, WorkerChannels())


async def test_a_caller_gone_after_its_grant_frees_the_worker() -> None:
    planner = Planner()
    items = _executor(planner).run("t", "p1", _call(), 10.0)
    assert isinstance(await anext(items), Granted)
    await items.aclose()  # the caller leaves before the worker was asked to start
    await planner.reported.wait()
    (report,) = planner.reports
    assert (report.program_id, report.call_id, report.attempt, report.worker_id, report.status) \
        == ("p1", "c1", 1, "w1", planner_pb2.COMPLETION_STATUS_CANCELLED)
    assert report.granted  # of the grant it held (planner/core/reports.py `_live`)


async def test_a_caller_whose_time_ran_out_after_its_grant_is_reported_deadline_exceeded(
        ) -> None:
    """Its deadline, not its caller, stopped it (tracing review 2026-12-05 F5)."""
    planner = Planner()
    items = _executor(planner).run("t", "p1", _call(), 0.2)
    assert isinstance(await anext(items), Granted)
    await asyncio.sleep(0.25)  # only puts the call's 0.2 s behind us
    await items.aclose()
    await planner.reported.wait()
    (report,) = planner.reports
    assert report.status == planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED


@pytest.mark.parametrize(("code", "status"), [
    (grpc.StatusCode.DEADLINE_EXCEEDED, planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED),
    (grpc.StatusCode.CANCELLED, planner_pb2.COMPLETION_STATUS_CANCELLED)])
async def test_an_admit_that_ends_at_its_deadline_frees_a_grant_it_may_have_missed(
        code: grpc.StatusCode, status: int) -> None:
    planner = Planner(admit_error=code)
    new = NewProgram(common_pb2.ProgramOptions(program_id="p1"), one_call=True)
    with pytest.raises(CallFailed) as err:
        async for _ in _executor(planner).run("t", "p1", _call(), 10.0, new):
            pass
    assert err.value.code == code
    await planner.reported.wait()
    (report,) = planner.reports
    assert report.attempt == 0  # whichever attempt the planner granted
    assert not report.granted
    assert report.status == status


async def test_an_admit_refused_for_a_reason_reports_nothing() -> None:
    planner = Planner(admit_error=grpc.StatusCode.NOT_FOUND)
    with contextlib.suppress(CallFailed):
        async for _ in _executor(planner).run("t", "p1", _call(), 10.0):
            pass
    assert planner.reports == []
    assert asyncio.all_tasks() == {asyncio.current_task()}  # and none is on its way
