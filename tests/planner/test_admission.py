"""Program admission (planner/core/admission.py): table-driven, alone and in the planner, in
virtual time."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallRecord, CallState, PlannerCore
from planner.core.admission import ProgramAdmission, new_tokens
from planner.core.selection import parse_policy

WEIGHTS = {"a": 1.0, "b": 1.0, "c": 2.0}


def call(program: str, tenant: str, prompt: int, cid: str = "c",
         kv: dict[str, int] | None = None) -> CallRecord:
    return CallRecord(program, cid, tenant, "main", (), prompt, 16, 0.0, kv_matches=kv)


@pytest.mark.parametrize(
    ("prompt", "kv", "expected"),
    [
        (1000, None, 1000),  # no KV index: the whole prompt
        (1000, {}, 1000),
        (1000, {"w0": 40, "w1": 10}, 1000 - 40 * 16),  # the longest match counts
        (100, {"w0": 40}, 0),  # never below 0
    ],
)
def test_new_tokens_are_what_no_engine_held(prompt: int, kv: dict[str, int] | None,
                                            expected: int) -> None:
    assert new_tokens(call("p", "a", prompt, kv=kv)) == expected


@pytest.mark.parametrize(
    ("started", "tenant", "tokens", "starts"),
    [
        # capacity 1000; a tenant with nothing started always starts one, however large
        ({}, "a", 5000, True),
        ({"b": 900}, "a", 5000, True),
        # it fits beside what every tenant holds
        ({"a": 600}, "a", 300, True),
        ({"a": 600, "b": 100}, "a", 300, True),
        # a alone holds 800: its share is everything, 1100 does not fit
        ({"a": 800}, "a", 300, False),
        # b within its share (500 of 1000, weights 1:1) starts although the total is over
        ({"a": 800, "b": 100}, "b", 300, True),
        # b over its share waits; so does a, over its share
        ({"a": 800, "b": 300}, "b", 300, False),
        ({"a": 800, "b": 100}, "a", 300, False),
        # weights 2:1 (c: 667 of 1000)
        ({"a": 700, "c": 300}, "c", 300, True),
        ({"a": 700, "c": 400}, "c", 300, False),
    ],
)
def test_who_may_start_a_program(started: dict[str, int], tenant: str, tokens: int,
                                 starts: bool) -> None:
    adm = ProgramAdmission(WEIGHTS.__getitem__, capacity=1000)
    for t, held in started.items():
        adm.restored(f"{t}-old", t, held)
    new = call("new", tenant, tokens)
    assert adm.admit(new) is False  # a program not started waits, then is released or not
    assert (adm.release() == [new]) is starts
    assert adm.started("new") is starts and len(adm) == (0 if starts else 1)


def test_a_tenant_finishes_what_it_started_first() -> None:
    """Released in arrival order per tenant, the tenant furthest below its share first;
    a started program's later calls queue at once and grow its working set."""
    adm = ProgramAdmission(WEIGHTS.__getitem__, capacity=1000)
    first, second, third = call("p1", "a", 400), call("p2", "a", 400), call("p3", "a", 400)
    assert not adm.admit(first) and not adm.admit(second) and not adm.admit(third)
    assert adm.release() == [first, second]  # the third does not fit
    assert adm.admit(call("p1", "a", 500, "d", kv={"w0": 25}))  # 500 - 400 new
    adm.generated("p1", 50)
    assert adm.working_set("a") == 400 + 100 + 50 + 400
    b = call("q1", "b", 100)
    assert not adm.admit(b) and adm.release() == [b]  # b within its share
    adm.end("p1")
    assert adm.release() == [third] and adm.working_set() == 400 + 100 + 400


def test_calls_that_leave_while_waiting_are_forgotten() -> None:
    adm = ProgramAdmission(WEIGHTS.__getitem__, capacity=100)
    adm.restored("big", "a", 100)
    waiting = [call("p1", "a", 50, "x"), call("p1", "a", 50, "y"), call("p2", "a", 50)]
    for c in waiting:
        assert not adm.admit(c)
    assert adm.size_of("a") == 3 and adm.waiting_programs("a") == 2
    adm.forget(waiting[0])
    waiting[1].state = CallState.CANCELLED  # left without being forgotten: skipped
    adm.forget(waiting[2])
    adm.end("big")
    assert adm.release() == [] and len(adm) == 0 and adm.started("p1")


def test_off_every_program_starts_and_nothing_is_counted() -> None:
    adm = ProgramAdmission(WEIGHTS.__getitem__, enabled=False)
    assert adm.admit(call("p", "a", 10_000)) and adm.working_set() == 0


# ---- in the planner -------------------------------------------------------------------


def planner(kv: int = 1000, budget: int = 8) -> PlannerCore:
    core = PlannerCore(ManualClock(), *parse_policy("fcfs+round_robin"),
                       kv_tokens_per_worker=kv, program_kv_fraction=1.0,
                       isolation_fraction=1.0)
    core.upsert_worker("w0", "a0", budget)
    return core


def test_in_the_planner_a_flooding_tenant_waits_to_start_programs_not_calls() -> None:
    core = planner()
    for p in ("n0", "n1"):
        core.register_program(p, "noisy")
        core.submit(p, "noisy", "c", prompt_tokens=600)
    assert [g.program_id for g in core.dispatch()] == ["n0"]  # n1 does not fit beside it
    assert core.queued == 1 and core.waiting_to_start("noisy") == (1, 1)
    core.complete("n0", "c", prompt_tokens=600, completion_tokens=20)
    core.submit("n0", "noisy", "d", parents=["c"], prompt_tokens=700,
                kv_matches={"w0": 620 // 16})
    assert [g.program_id for g in core.dispatch()] == ["n0"]  # started: it goes on
    core.register_program("q0", "quiet")
    core.submit("q0", "quiet", "c", prompt_tokens=600)
    assert [g.program_id for g in core.dispatch()] == ["q0"]  # within its share
    core.complete("n0", "d", prompt_tokens=700, completion_tokens=20)
    core.end_program("n0", "noisy")
    assert [g.program_id for g in core.dispatch()] == ["n1"]  # room again
    assert core.working_set("noisy") == 600 and core.queued == 0


def test_in_the_planner_waiting_programs_can_be_cancelled_and_ended() -> None:
    core = planner()
    for p in ("n0", "n1", "n2"):
        core.register_program(p, "noisy")
        core.submit(p, "noisy", "c", prompt_tokens=600)
    core.dispatch()
    core.cancel("n1", "c")
    core.end_program("n2", "noisy")
    assert core.queued == 0 and core.waiting_to_start("noisy") == (0, 0)
    core.complete("n0", "c", prompt_tokens=600, completion_tokens=20)
    core.end_program("n0", "noisy")
    assert core.dispatch() == [] and core.working_set() == 0


def test_capacity_follows_the_healthy_workers() -> None:
    core = planner(kv=500)
    core.upsert_worker("w1", "a1", 8)  # 1000 in all
    for p in ("n0", "n1"):
        core.register_program(p, "noisy")
        core.submit(p, "noisy", "c", prompt_tokens=500)
    assert len(core.dispatch()) == 2
    core.upsert_worker("w1", "a1", 8, healthy=False)  # 500: a third would not fit
    core.register_program("n2", "noisy")
    core.submit("n2", "noisy", "c", prompt_tokens=100)
    assert core.dispatch() == [] and core.queued == 1


def test_capacity_comes_from_what_each_worker_reports() -> None:
    core = planner(kv=0)  # no operator setting: the workers' own reports size it
    core.upsert_worker("w0", "a0", 8, kv_tokens=400)
    core.upsert_worker("w1", "a1", 8, kv_tokens=600)  # 1000 in all
    for p in ("n0", "n1", "n2"):
        core.register_program(p, "noisy")
        core.submit(p, "noisy", "c", prompt_tokens=400)
    assert [g.program_id for g in core.dispatch()] == ["n0", "n1"]  # a third would not fit
    core.upsert_worker("w1", "a1", 8, kv_tokens=1000)  # a larger pool reported: 1400
    assert [g.program_id for g in core.dispatch()] == ["n2"]


@pytest.mark.parametrize("reported", [0, 300])
def test_with_no_pool_known_programs_start_at_once_but_are_counted(reported: int) -> None:
    core = PlannerCore(ManualClock(), *parse_policy("fcfs+round_robin"), isolation_fraction=1.0)
    core.upsert_worker("w0", "a0", 8)  # reports no KV pool
    for p in ("n0", "n1", "n2"):
        core.register_program(p, "noisy")
        core.submit(p, "noisy", "c", prompt_tokens=400)
    assert len(core.dispatch()) == 3 and core.working_set("noisy") == 1200
    if reported:  # once a pool is known, the counted working sets hold new programs back
        core.upsert_worker("w0", "a0", 8, kv_tokens=reported)
        core.register_program("n3", "noisy")
        core.submit("n3", "noisy", "c", prompt_tokens=100)
        assert core.dispatch() == [] and core.waiting_to_start("noisy") == (1, 1)


def test_an_idle_program_stops_counting_and_grows_again_when_it_calls() -> None:
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), isolation_fraction=1.0,
                       kv_tokens_per_worker=1000, program_kv_fraction=1.0,
                       program_kv_idle_s=120.0, program_idle_ttl_s=1800.0)
    core.upsert_worker("w0", "a0", 8)
    for p in ("n0", "n1"):
        core.register_program(p, "noisy")
        core.submit(p, "noisy", "c", prompt_tokens=600)
    assert [g.program_id for g in core.dispatch()] == ["n0"]
    core.complete("n0", "c", prompt_tokens=600, completion_tokens=20)
    clock.advance(60.0)
    core.upsert_worker("w0", "a0", 8)  # a heartbeat keeps the worker
    assert core.expire() == [] and core.dispatch() == []  # idle 60 s: still counted
    clock.advance(61.0)
    core.upsert_worker("w0", "a0", 8)
    assert core.expire() == [] and core.working_set("noisy") == 0  # dormant, not ended
    assert [g.program_id for g in core.dispatch()] == ["n1"]
    core.submit("n0", "noisy", "d", parents=["c"], prompt_tokens=700)  # n0 goes on
    assert [g.program_id for g in core.dispatch()] == ["n0"]
    assert core.working_set("noisy") == 600 + 700


@pytest.mark.parametrize(("conversation", "idle_s", "counted"), [
    (True, 9.0, True),  # a conversation between calls (an agent's tool runs): still counted
    (True, 11.0, False),  # idle past conversation_kv_idle_s: taken as done, not counted
    (False, 11.0, True),  # a program its caller ends: counted until program_kv_idle_s
    (False, 121.0, False),
])
def test_a_conversation_stops_counting_sooner(conversation: bool, idle_s: float,
                                              counted: bool) -> None:
    # nobody ends a conversation (the OpenAI-compatible API's programs): kept counted for
    # program_kv_idle_s, a tenant's never-ended conversations would hold new ones back
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), isolation_fraction=1.0,
                       kv_tokens_per_worker=1000, program_kv_fraction=1.0,
                       program_kv_idle_s=120.0, conversation_kv_idle_s=10.0)
    core.upsert_worker("w0", "a0", 8)
    core.register_program("n0", "t", conversation=conversation)
    core.submit("n0", "t", "c", prompt_tokens=600)
    assert len(core.dispatch()) == 1
    core.complete("n0", "c", prompt_tokens=600, completion_tokens=20)
    clock.advance(idle_s)
    core.upsert_worker("w0", "a0", 8)
    assert core.expire() == []
    assert core.working_set("t") == (620 if counted else 0)


@pytest.mark.parametrize(("policy", "kv_tokens", "admission"), [
    ("fcfs+round_robin", 0, True),  # no pool known: admission holds nothing back
    ("fcfs+round_robin", 400_000, True),  # a pool known, the first call fits at once
    ("fcfs+round_robin", 400_000, False),
    ("fcfs+affinity", 400_000, True),
])
def test_a_new_programs_first_call_keeps_its_place_while_every_worker_is_busy(
        policy: str, kv_tokens: int, admission: bool) -> None:
    """Planner review 2026-12-06 F1: with a KV pool known, a new program's first call that
    came while the worker was busy waited in admission until a slot freed and was queued
    then, behind a call of a running program that came after it."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy), program_admission=admission)
    core.upsert_worker("w0", "a0", 1, kv_tokens=kv_tokens)
    core.register_program("A", "t")
    core.submit("A", "t", "a1", prompt_tokens=30)
    assert [g.call_id for g in core.dispatch()] == ["a1"]  # t=0: the only slot
    clock.advance(1.0)
    core.register_program("B", "t")
    core.submit("B", "t", "b1", prompt_tokens=30)  # t=1
    assert core.dispatch() == []
    clock.advance(1.0)
    core.submit("A", "t", "a2", prompt_tokens=30)  # t=2, a1 still running
    clock.advance(1.0)
    core.complete("A", "a1", service_s=3.0)  # t=3: the slot frees
    assert [g.call_id for g in core.dispatch()] == ["b1"]
    assert core.program("B", "t").calls["b1"].queued_at == 1.0
