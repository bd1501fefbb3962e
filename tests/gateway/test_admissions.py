"""Admit over one stream (gateway/admissions.py) against a real planner servicer on
loopback: the grants come back to their callers, refusals and deadlines fail as the unary
Admit would, and a caller that gives up has its admission dropped at the planner."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.admissions import Admissions
from ostinato.clock import SystemClock
from ostinato.v1 import planner_pb2, planner_pb2_grpc
from planner.core import CallState, PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.gateway.loop_reports import ended, loop_reports
from tests.planner.loopback import NoStore, calls_running_on_w0, planner_on_loopback


def _admit(call_id: str, program_id: str = "p") -> planner_pb2.AdmitRequest:
    return planner_pb2.AdmitRequest(program_id=program_id, tenant="t", call_id=call_id)


async def test_concurrent_admissions_share_one_stream_and_get_their_own_grants() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub)
        admissions = Admissions(stub)
        try:
            grants = await asyncio.gather(*(admissions.Admit(_admit(c), timeout=10.0)
                                            for c in ("a", "b", "c")))
            assert [g.call_id for g in grants] == ["a", "b", "c"]
            assert {g.worker_id for g in grants} == {"w0"} and all(g.attempt == 1 for g in grants)
        finally:
            await admissions.close()


async def test_a_refused_admission_fails_with_admits_status() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub)
        admissions = Admissions(stub)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await admissions.Admit(_admit("x", program_id="nope"), timeout=10.0)
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await stub.Admit(_admit("x", program_id="nope"), timeout=10.0)
            assert unknown.value.code() == unary.value.code() == grpc.StatusCode.NOT_FOUND
            assert unknown.value.details() == unary.value.details()
            # the stream still serves after a refusal
            assert (await admissions.Admit(_admit("a"), timeout=10.0)).call_id == "a"
        finally:
            await admissions.close()


async def test_an_admission_past_its_deadline_is_dropped_at_the_planner() -> None:
    """No worker has room: the admission waits, its deadline passes (DEADLINE_EXCEEDED, as
    a unary Admit), and the planner cancels the queued call."""
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock()) as (stub, _):
        await calls_running_on_w0(stub, "a", "b", "c", "d")  # w0's 4 slots taken
        admissions = Admissions(stub)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await admissions.Admit(_admit("e"), timeout=0.2)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # (the admit goes before its cancel on the stream, which may open after the
            # deadline on a busy machine: "e" reaches the planner, then its cancel)
            async with asyncio.timeout(20.0):  # the cancel (or the planner's own deadline)
                while ((call := core.program("p", "t").calls.get("e")) is None
                       or call.state is not CallState.CANCELLED):
                    await asyncio.sleep(0.01)
        finally:
            await admissions.close()


async def test_a_stream_the_planner_ended_leaves_no_task_behind() -> None:
    """The planner restarted: the ended stream's request iterator ends too, not left waiting
    for its next admission until the collector destroys grpc's pending task ("Task was
    destroyed but it is pending!" in the gateway's log: a helper's walkthrough 2026-12-07)."""
    server = grpc.aio.server()
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    planner_pb2_grpc.add_PlannerServicer_to_server(
        PlannerService(core, NoStore(), SystemClock()), server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")  # outlives the planner
    admissions = Admissions(planner_pb2_grpc.PlannerStub(channel))
    try:
        async with loop_reports() as reported:
            await calls_running_on_w0(planner_pb2_grpc.PlannerStub(channel))
            assert (await admissions.Admit(_admit("a"), timeout=10.0)).call_id == "a"
            assert admissions._stream is not None
            reader = admissions._stream.reader
            await server.stop(None)
            await ended(reader)  # the stream ended with the planner
            del reader
        assert not reported, reported
    finally:
        await admissions.close()
        await channel.close()
