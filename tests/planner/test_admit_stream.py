"""planner/admit_stream.py: each admission read from the stream gets its answer; one
whose decision raises (a bug) is answered INTERNAL at once, not left to its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from ostinato.v1 import planner_pb2
from planner.admit_stream import AdmitRefused, serve_admissions
from tests.hand_rpc import HandDrivenRpc


async def _admit(request: planner_pb2.AdmitRequest) -> planner_pb2.Grant:
    if request.call_id == "bug":
        raise KeyError("a bug")
    if request.call_id == "refused":
        raise AdmitRefused(grpc.StatusCode.NOT_FOUND, "no such program")
    return planner_pb2.Grant(worker_id="w1")


async def test_every_admission_is_answered_a_failing_one_internal() -> None:
    async def requests() -> AsyncIterator[planner_pb2.AdmitStreamRequest]:
        for i, call_id in enumerate(("ok", "bug", "refused"), 1):
            yield planner_pb2.AdmitStreamRequest(id=i, admit=planner_pb2.AdmitRequest(
                program_id="p", call_id=call_id))

    async with asyncio.timeout(10):
        answers = {r.id: r async for r in serve_admissions(_admit, requests())}
    assert answers[1].grant.worker_id == "w1" and not answers[1].status
    assert answers[2].status == grpc.StatusCode.INTERNAL.value[0]
    assert answers[3].status == grpc.StatusCode.NOT_FOUND.value[0]


async def test_a_stream_that_ends_while_a_reply_is_sent_drops_its_queued_admissions() -> None:
    """The handler left at a reply by gRPC (its caller gone while the reply was sent): the
    stream's end cancels its admissions still queued (ostinato/rpc_closing.py), as a
    cancel would, not when the handler is collected."""
    from ostinato.clock import SystemClock
    from planner.core import PlannerCore
    from planner.core.selection import parse_policy
    from planner.service import PlannerService
    from tests.planner.loopback import NoStore

    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    core.upsert_worker("w0", "127.0.0.1:1", 1)
    core.register_program("p", "t")
    service = PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]

    async def requests() -> AsyncIterator[planner_pb2.AdmitStreamRequest]:
        for i in (1, 2):  # the second waits: w0 takes one call
            yield planner_pb2.AdmitStreamRequest(id=i, admit=planner_pb2.AdmitRequest(
                program_id="p", tenant="t", call_id=f"c{i}"))
        await asyncio.Event().wait()  # the caller's side stays open

    rpc = HandDrivenRpc()
    handler = service.AdmitStream(requests(), rpc)
    async with asyncio.timeout(10):
        first = await anext(handler)  # c1's grant, "being sent": the handler waits at it
    assert first.grant.worker_id == "w0"
    assert core.queued == 1  # c2
    await rpc.end()
    assert core.queued == 0


async def test_a_final_refusal_says_so_in_its_answer() -> None:
    async def admit(request: planner_pb2.AdmitRequest) -> planner_pb2.Grant:
        raise AdmitRefused(grpc.StatusCode.DEADLINE_EXCEEDED, "past its deadline",
                           final=request.call_id == "late")

    async def requests() -> AsyncIterator[planner_pb2.AdmitStreamRequest]:
        for i, call_id in enumerate(("late", "other"), 1):
            yield planner_pb2.AdmitStreamRequest(id=i, admit=planner_pb2.AdmitRequest(
                program_id="p", call_id=call_id))

    async with asyncio.timeout(10):
        answers = {r.id: r async for r in serve_admissions(admit, requests())}
    assert (answers[1].final, answers[2].final) == (True, False)
