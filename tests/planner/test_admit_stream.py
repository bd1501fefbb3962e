"""planner/admit_stream.py: each admission read from the stream gets its answer; one
whose decision raises (a bug) is answered INTERNAL at once, not left to its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from ostinato.v1 import planner_pb2
from planner.admit_stream import AdmitRefused, serve_admissions


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
