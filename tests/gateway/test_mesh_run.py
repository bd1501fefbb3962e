"""What the gateway's call path tells the planner about a call (gateway/mesh_run.py)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.mesh_run import MeshRun, planner_hints
from ostinato.v1 import common_pb2, planner_pb2


@pytest.mark.parametrize(("hint", "least", "expected"), [
    (0, 0, 0), (50, 0, 50), (0, 80, 80),  # min_tokens: at least that many will come
    (120, 80, 120), (80, 120, 120),
])
def test_min_tokens_is_a_floor_under_the_expected_output(hint: int, least: int,
                                                         expected: int) -> None:
    call = common_pb2.CallSpec(
        hints=common_pb2.CallHints(expected_output_tokens=hint, tags=["a"]),
        sampling=common_pb2.SamplingParams(min_new_tokens=least))
    out = planner_hints(call)
    assert out.expected_output_tokens == expected and list(out.tags) == ["a"]


class _Admissions:
    """Grants every call, saying `waiting` calls wait at the planner."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting

    async def Admit(self, request: planner_pb2.AdmitRequest,
                    timeout: float | None = None) -> planner_pb2.Grant:
        return planner_pb2.Grant(call_id=request.call_id, worker_id="w0",
                                 calls_waiting=self.waiting)


@pytest.mark.parametrize(("report_later", "waiting", "lingers"), [
    (True, 0, True),  # a one-call program's report, nobody waiting: batched
    (True, 3, False),  # calls wait for the slot it frees: at once
    (False, 0, False),  # a program's (its EndProgram waits for it): at once
])
async def test_reports_linger_only_while_no_call_waits_at_the_planner(
        report_later: bool, waiting: int, lingers: bool) -> None:
    """(ovh review 2026-12-07: one worker of 4 slots at 100 one-call programs/s queued
    calls for seconds, each slot held ~50 ms past its call's end by the batched report.)"""
    mesh = MeshRun(None, None, _Admissions(waiting), lambda usage, _: usage)  # type: ignore[arg-type]
    await mesh._admitted(planner_pb2.AdmitRequest(program_id="p", call_id="c"), None, 5.0)
    reporter = mesh.reporter_for(report_later)
    assert (reporter is not mesh.report_now) is lingers


class _HeldAdmissions:
    """Grants nothing until released: a call waiting at the planner."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def Admit(self, request: planner_pb2.AdmitRequest,
                    timeout: float | None = None) -> planner_pb2.Grant:
        await self.release.wait()
        return planner_pb2.Grant(call_id=request.call_id, worker_id="w0")


async def test_reports_go_at_once_while_a_call_of_this_gateway_waits_for_its_grant() -> None:
    """The last grant said nothing waits, but a call of this gateway has waited since: the
    slot a report frees may be what it waits for (diff review 2026-12-07)."""
    admissions = _HeldAdmissions()
    mesh = MeshRun(None, None, admissions, lambda usage, _: usage)  # type: ignore[arg-type]
    waiting = asyncio.create_task(mesh._admitted(
        planner_pb2.AdmitRequest(program_id="p", call_id="b"), None, 5.0))
    await asyncio.sleep(0)
    assert mesh.reporter_for(True) is mesh.report_now
    admissions.release.set()
    await waiting
    assert mesh.reporter_for(True) is not mesh.report_now
