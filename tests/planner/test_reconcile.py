"""Lost grants (planner/core/reconcile.py): a worker's heartbeat lists the calls it knows;
running calls there that it does not know, granted long enough ago, end CANCELLED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ostinato.clock import ManualClock
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from planner.core import CallState, PlannerCore
from planner.core.model import CallChanged, CallRecord
from planner.core.reconcile import lost_calls
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import planner_on_loopback as loopback
from tests.planner.test_recovery import crashed_mid_program
from tests.prometheus_text import of_registry, value

AGE = 10.0  # unstarted_grant_s in these tests


def _running(call_id: str, granted: float | None, attempt: int = 1) -> CallRecord:
    call = CallRecord("p", call_id, "t", "main", (), 10, 10, arrival=0.0, attempt=attempt,
                      state=CallState.RUNNING, worker_id="w0")
    call.dispatched_at = granted
    return call


@pytest.mark.parametrize(("granted", "attempt", "known", "since", "min_age", "lost"), [
    (0.0, 1, set(), 0.0, AGE, True),  # unknown, old: lost
    (0.0, 1, {("p", "c", 1)}, 0.0, AGE, False),  # known: running, ended lately or reporting
    (0.0, 1, {("p", "c", 0)}, 0.0, AGE, False),  # known without its attempt: any attempt
    (0.0, 2, {("p", "c", 1)}, 0.0, AGE, True),  # the worker knows an earlier attempt only
    (0.0, 1, {("p", "other", 1)}, 0.0, AGE, True),
    (15.0, 1, set(), 0.0, AGE, False),  # young: its gateway may be starting it now
    (10.0, 1, set(), 0.0, AGE, False),  # exactly unstarted_grant_s old: not yet
    (None, 1, set(), 0.0, AGE, True),  # no grant time (an old record): its arrival
    (0.0, 1, set(), 15.0, AGE, False),  # this planner heard from the worker lately
    (0.0, 1, set(), 0.0, 0.0, False),  # unstarted_grant_s 0: the check is off
])
def test_lost_calls_table(granted: float | None, attempt: int, known: set, since: float,
                          min_age: float, lost: bool) -> None:
    call = _running("c", granted, attempt)
    found = lost_calls([call], known, now=20.0, worker_since=since, min_age_s=min_age)
    assert found == ([call] if lost else [])


def make_core(unstarted_grant_s: float = AGE) -> tuple[PlannerCore, ManualClock]:
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"),
                       unstarted_grant_s=unstarted_grant_s)
    core.upsert_worker("w0", "a0", 1)
    core.upsert_worker("w1", "a1", 1)
    core.register_program("p", "t")
    core.submit("p", "t", "a")
    core.submit("p", "t", "b")
    core.submit("p", "t", "c")  # waits: both slots are taken
    assert [(g.call_id, g.worker_id) for g in core.dispatch()] == [("a", "w0"), ("b", "w1")]
    core.take_events()
    return core, clock


@pytest.mark.parametrize(("after_s", "known", "ended"), [
    (11.0, set(), ["a"]),  # w0 never started a
    (11.0, {("p", "a", 1)}, []),  # w0 runs a
    (11.0, {("p", "b", 1)}, ["a"]),  # b is w1's: w0 knowing it saves nothing, losing it ends nothing
    (5.0, set(), []),  # a was granted 5 s ago: its gateway may still start it
])
def test_a_worker_heartbeat_ends_the_old_grants_it_does_not_know(
        after_s: float, known: set, ended: list[str]) -> None:
    core, clock = make_core()
    clock.advance(after_s)
    assert core.reconcile_worker("w0", known) == []  # a first list lacking it: a suspect only
    clock.advance(2)
    lost = core.reconcile_worker("w0", known)  # the next one lacks it too
    assert [c.call_id for c in lost] == ended
    calls = core.program("p", "t").calls
    assert calls["b"].state is CallState.RUNNING  # another worker's call
    if ended:
        assert calls["a"].state is CallState.CANCELLED and calls["a"].finished_at == after_s + 2
        assert [e.call.call_id for e in core.take_events() if isinstance(e, CallChanged)] \
            == ["a"]
        assert [g.call_id for g in core.dispatch()] == ["c"]  # w0's slot is free again
    else:
        assert calls["a"].state is CallState.RUNNING
        assert core.dispatch() == []
    assert core.unstarted_grants == len(ended)


def test_a_lost_grant_is_counted_once_and_its_client_retry_runs_as_the_next_attempt() -> None:
    core, clock = make_core()
    clock.advance(11)
    assert core.reconcile_worker("w0", set()) == []  # missing from one list: a suspect
    assert len(core.reconcile_worker("w0", set())) == 1  # and from the next: lost
    assert core.reconcile_worker("w0", set()) == []  # already ended
    assert core.unstarted_grants == 1
    assert [g.call_id for g in core.dispatch()] == ["c"]  # in a's freed slot
    core.complete("p", "b")
    retry = core.submit("p", "t", "a", resend=True)  # a's client, alive, sends it again
    assert retry.attempt == 2
    [grant] = core.dispatch()
    assert (grant.call_id, grant.attempt) == ("a", 2)
    clock.advance(11)
    assert core.reconcile_worker(grant.worker_id, {("p", "a", 2)}) == []  # the retry runs
    assert core.unstarted_grants == 1


def test_unstarted_grant_s_zero_never_ends_a_call() -> None:
    core, clock = make_core(unstarted_grant_s=0.0)
    clock.advance(1000)
    assert core.reconcile_worker("w0", set()) == []


def test_an_unknown_or_idle_worker_has_nothing_to_reconcile() -> None:
    core, clock = make_core()
    clock.advance(11)
    assert core.reconcile_worker("nobody", set()) == []
    core.complete("p", "a")
    assert core.reconcile_worker("w0", set()) == []


def test_restored_running_calls_get_unstarted_grant_s_from_the_workers_registration() -> None:
    # a restarted planner: b restored as running on w0, its grant (8 s ago) kept
    core, clock = crashed_mid_program()
    core.remove_worker("w0")
    clock.advance(1)
    core.upsert_worker("w0", "127.0.0.1:9000", 1)  # w0 registers with the new planner
    b = core.program("p", "acme").calls["b"]
    assert b.state is CallState.RUNNING and b.dispatched_at is not None
    assert b.dispatched_at < clock.now() - 5  # an old grant, but
    assert core.reconcile_worker("w0", set()) == []  # its caller may re-admit it now
    clock.advance(AGE + 1)
    assert core.reconcile_worker("w0", {("p", "b", 1)}) == []  # w0 runs it
    assert core.reconcile_worker("w0", set()) == []  # missing once: a suspect
    assert [c.call_id for c in core.reconcile_worker("w0", set())] == ["b"]  # lost
    assert core.workers[0].inflight == 0


# ---- the servicer: the heartbeat's field, and whom it is meant for ------------------


@asynccontextmanager
async def planner_on_loopback(clock: ManualClock) -> AsyncIterator[
        tuple[planner_pb2_grpc.PlannerStub, PlannerService]]:
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), unstarted_grant_s=AGE)
    async with loopback(core, clock) as pair:
        yield pair


def _heartbeat(known: list[tuple[str, str, int]] | None,
               instance: str = "") -> planner_pb2.WorkerRegistration:
    reg = planner_pb2.WorkerRegistration(worker_id="w0", address="127.0.0.1:1", max_inflight=1)
    if known is not None:
        reg.known_calls.SetInParent()
        reg.known_calls.planner_instance = instance
        reg.known_calls.calls.extend(planner_pb2.CallAttempt(program_id=p, call_id=c, attempt=a)
                                     for p, c, a in known)
    return reg


@pytest.mark.parametrize(("known", "for_this_planner", "cancelled"), [
    (None, True, False),  # an older worker reports no calls: nothing is reconciled
    ([], False, False),  # meant for the planner before a restart: not yet
    ([], True, True),  # the worker knows no call: its grant was lost
    ([("p", "c1", 1)], True, False),
])
async def test_register_worker_reconciles_only_a_list_meant_for_this_planner(
        known: list | None, for_this_planner: bool, cancelled: bool) -> None:
    clock = ManualClock()
    async with planner_on_loopback(clock) as (stub, service):
        await stub.RegisterWorker(_heartbeat(None))
        await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="acme", options=common_pb2.ProgramOptions(program_id="p")))
        grant = await stub.Admit(planner_pb2.AdmitRequest(program_id="p", tenant="acme",
                                                          call_id="c1"))
        assert grant.attempt == 1
        clock.advance(AGE + 1)  # its gateway never starts it
        instance = service.instance if for_this_planner else "an-earlier-planner"
        await stub.RegisterWorker(_heartbeat(known, instance))  # a suspect at most
        assert service._core.program("p", "acme").calls["c1"].state is CallState.RUNNING
        await stub.RegisterWorker(_heartbeat(known, instance))
        state = service._core.program("p", "acme").calls["c1"].state
        assert state is (CallState.CANCELLED if cancelled else CallState.RUNNING)
        s = of_registry(service.metrics.registry)
        assert value(s, "ostinato_planner_unstarted_grants_total", worker="w0") == int(cancelled)
        assert value(s, "ostinato_planner_running_calls", worker="w0") == int(not cancelled)


def test_a_list_built_before_the_call_started_cannot_end_it() -> None:
    # the worker's list lacked `a` (built before the call reached it, delivered late); the
    # next list has it: `a` is no longer a suspect, and a later miss starts over
    core, clock = make_core()
    clock.advance(11)
    assert core.reconcile_worker("w0", set()) == []
    assert core.reconcile_worker("w0", {("p", "a", 1)}) == []
    assert core.reconcile_worker("w0", set()) == []
    assert core.program("p", "t").calls["a"].state is CallState.RUNNING
