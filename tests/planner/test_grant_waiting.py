"""A grant says how many calls wait at the planner as it leaves (Grant.calls_waiting): a
gateway then sends completion reports at once instead of batching them, since a finished
call's worker slot is free only once its report comes (ovh review 2026-12-07)."""

from __future__ import annotations

import asyncio

from ostinato.clock import SystemClock
from ostinato.v1 import planner_pb2
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.hand_rpc import HandDrivenRpc
from tests.planner.loopback import NoStore


def _admit(call_id: str) -> planner_pb2.AdmitRequest:
    return planner_pb2.AdmitRequest(program_id="p", tenant="t", call_id=call_id)


async def test_a_grant_counts_the_calls_still_waiting() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "127.0.0.1:1", 1)  # one call at a time
    core.register_program("p", "t")
    service = PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
    async with asyncio.timeout(10):
        first = await service._admit(_admit("c1"))
        assert first.worker_id == "w0" and first.calls_waiting == 0  # nothing else came
        later = [asyncio.create_task(service._admit(_admit(c))) for c in ("c2", "c3")]
        while core.queued < 2:
            await asyncio.sleep(0)
        await service.ReportCompletions(planner_pb2.CompletionReports(reports=[
            planner_pb2.CompletionReport(program_id="p", call_id="c1", worker_id="w0",
                                         status=planner_pb2.COMPLETION_STATUS_OK,
                                         attempt=first.attempt)]), HandDrivenRpc())
        second = await later[0]
        assert second.call_id == "c2" and second.calls_waiting == 1  # c3 still waits
        later[1].cancel()
