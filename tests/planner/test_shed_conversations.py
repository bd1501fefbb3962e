"""A conversation's first request (AdmitRequest.register_program, not ended after) that the
planner refuses leaves no program behind (overload review 2026-12-06: each load shed of one
left an empty program open, in memory and in Redis, for program_idle_ttl_s: +95 programs
for 30 shed calls). Over gRPC on loopback, no Redis."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from ostinato.clock import SystemClock
from ostinato.v1 import common_pb2, planner_pb2
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from tests.planner.loopback import planner_on_loopback


def _first_call(program_id: str, call_id: str = "c") -> planner_pb2.AdmitRequest:
    return planner_pb2.AdmitRequest(
        program_id=program_id, tenant="t", call_id=call_id,
        register_program=common_pb2.ProgramOptions(program_id=program_id))


async def test_a_shed_conversations_first_call_leaves_no_program_open() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"),
                       max_queued_per_tenant=1, program_admission=False)
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await stub.RegisterWorker(planner_pb2.WorkerRegistration(
            worker_id="w0", address="127.0.0.1:1", max_inflight=1))
        await stub.Admit(_first_call("running"))  # takes the one slot
        waiting = asyncio.ensure_future(stub.Admit(_first_call("waiting")))  # queued
        while core.queued < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(grpc.aio.AioRpcError) as shed:
            await stub.Admit(_first_call("shed"))
        assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert core.programs_open == 2  # "running" and "waiting"; "shed" ended
        # a program already open (another request of the conversation) is not ended by it
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Admit(_first_call("running", "c2"))
        assert core.programs_open == 2
        waiting.cancel()
