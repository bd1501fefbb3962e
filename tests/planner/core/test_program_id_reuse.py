"""A program id registered again while calls of its ended run still run is refused
(ProgramIdInUse, ALREADY_EXISTS) until they end, however they end (review F5: the old run's
report completed the new run's never-run call, and the old call's slot leaked for good).
Pure, clock-injected."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, DuplicateCall, PlannerCore, ProgramIdInUse
from planner.core.selection import parse_policy
from planner.translate import status_for


def _core() -> tuple[PlannerCore, ManualClock]:
    clock = ManualClock()
    prio, route = parse_policy("fcfs+round_robin")
    core = PlannerCore(clock, prio, route, worker_ttl_s=1e9, program_idle_ttl_s=100,
                       unstarted_grant_s=3)
    core.upsert_worker("w0", "addr0", 1)
    return core, clock


def _lost(core: PlannerCore, clock: ManualClock) -> None:
    for _ in range(3):  # its worker does not know it (two heartbeats past the age)
        clock.advance(4)
        core.upsert_worker("w0", "addr0", 1)
        core.reconcile_worker("w0", set())


ENDINGS: dict[str, Callable[[PlannerCore, ManualClock], object]] = {
    "done": lambda core, clock: (clock.advance(1.0), core.complete("job", "c1", service_s=1.0)),
    "failed": lambda core, _: core.complete("job", "c1", state=CallState.FAILED),
    "cancelled": lambda core, _: core.cancel("job", "c1"),
    "lost": _lost,
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_an_id_is_registered_again_once_its_ended_runs_calls_end(ending: str) -> None:
    core, clock = _core()
    core.register_program("job", "t")
    old = core.submit("job", "t", "c1")
    core.dispatch()
    core.end_program("job", "t")  # while c1 runs
    with pytest.raises(ProgramIdInUse, match="'job' is still in use: 1 call"):
        core.register_program("job", "t")
    with pytest.raises(DuplicateCall, match="'job' is taken"):  # nothing of it told
        core.register_program("job", "another-tenant")
    ENDINGS[ending](core, clock)
    assert old.state.finished
    worker = core.worker("w0")
    assert worker is not None and worker.inflight == 0  # the old call's slot is free
    core.register_program("job", "t")
    new = core.submit("job", "t", "c1")
    assert new is not old and new.state is CallState.QUEUED
    assert [g.call_id for g in core.dispatch()] == ["c1"]
    clock.advance(2.0)
    core.complete("job", "c1", service_s=2.0)
    assert new.state is CallState.DONE
    assert core._programs["job"].attained_service_s == 2.0  # nothing of the old run's


def test_an_ended_program_without_running_calls_frees_its_id_at_once() -> None:
    core, _ = _core()
    core.register_program("job", "t")
    core.submit("job", "t", "c1")
    core.submit("job", "t", "c2", parents=["c1"])  # queued and blocked: cancelled at the end
    core.end_program("job", "t")
    assert core.register_program("job", "t").calls == {}
    assert core._draining == {}


def test_the_id_waits_for_every_running_call() -> None:
    core, _ = _core()
    core.upsert_worker("w1", "addr1", 1)
    core.register_program("job", "t")
    core.submit("job", "t", "c1")
    core.submit("job", "t", "c2")
    core.dispatch()
    core.end_program("job", "t")
    core.complete("job", "c1")
    with pytest.raises(ProgramIdInUse, match="1 call"):
        core.register_program("job", "t")
    core.complete("job", "c2")
    core.register_program("job", "t")


def test_refused_as_already_exists() -> None:
    assert status_for(ProgramIdInUse("x")) is grpc.StatusCode.ALREADY_EXISTS
