"""Backpressure in the planner core: bounded queues (overall and per tenant) and a tenant's
limit on open programs refuse at once (Overloaded), and never a call already admitted."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import Overloaded, PlannerCore
from planner.core.selection import parse_policy


def make_core(max_queued: int = 0, per_tenant: int = 0) -> PlannerCore:
    priority, routing = parse_policy("fcfs+round_robin")
    core = PlannerCore(ManualClock(), priority, routing, max_queued=max_queued,
                       max_queued_per_tenant=per_tenant)
    core.upsert_worker("w0", "addr", 1)  # one slot: the first call runs, the rest wait
    return core


def submit_all(core: PlannerCore, calls: list[tuple[str, str]]) -> list[str]:
    """Submits (tenant, call) pairs, each tenant in its own program; the outcome of each."""
    out = []
    for tenant, call in calls:
        core.register_program(f"p-{tenant}", tenant)
        try:
            core.submit(f"p-{tenant}", tenant, call)
            core.dispatch()
            out.append("ok")
        except Overloaded:
            out.append("full")
    return out


@pytest.mark.parametrize(("max_queued", "per_tenant", "calls", "expected"), [
    (0, 0, [("a", f"c{i}") for i in range(6)], ["ok"] * 6),  # unbounded
    # one running + 3 waiting; the 5th finds 3 waiting of 3
    (3, 0, [("a", f"c{i}") for i in range(6)], ["ok"] * 4 + ["full"] * 2),
    (0, 2, [("a", "c0"), ("a", "c1"), ("a", "c2"), ("a", "c3"), ("b", "c0"), ("b", "c1")],
     ["ok", "ok", "ok", "full", "ok", "ok"]),
    (3, 2, [("a", "c0"), ("a", "c1"), ("a", "c2"), ("b", "c0"), ("b", "c1")],
     ["ok", "ok", "ok", "ok", "full"]),
])
def test_queue_bounds(max_queued: int, per_tenant: int, calls: list[tuple[str, str]],
                      expected: list[str]) -> None:
    assert submit_all(make_core(max_queued, per_tenant), calls) == expected


def test_a_refused_call_leaves_no_trace_and_room_frees_as_calls_run() -> None:
    core = make_core(max_queued=1)
    assert submit_all(core, [("a", "c0"), ("a", "c1"), ("a", "c2")]) == ["ok", "ok", "full"]
    assert "c2" not in core.program("p-a", "a").calls
    core.complete("p-a", "c0")
    core.dispatch()  # c1 runs: the queue has room again
    assert submit_all(core, [("a", "c2")]) == ["ok"]


@pytest.mark.parametrize(("limit", "programs", "expected"), [
    (0, 3, ["ok", "ok", "ok"]),
    (2, 3, ["ok", "ok", "full"]),
])
def test_open_programs_limit(limit: int, programs: int, expected: list[str]) -> None:
    core = make_core()
    out = []
    for i in range(programs):
        try:
            core.register_program(f"p{i}", "t", max_open=limit)
            out.append("ok")
        except Overloaded:
            out.append("full")
    assert out == expected
    core.register_program("p0", "t", max_open=limit)  # the same program again: not a new one
    core.register_program("q0", "other", max_open=limit)  # another tenant's count
    if limit:
        core.end_program("p0", "t")
        core.register_program("p9", "t", max_open=limit)  # ended one: room for one more


@pytest.mark.parametrize(("programs", "expected"), [
    # the same namespace (the gateway's "tenant#generation/" id prefix): one count
    (["t#g1/p0", "t#g1/p1"], ["ok", "full"]),
    # the tenant revoked and created again (another generation): the old one's open
    # programs are not the new one's (security review 2026-12-05 F3 leftover)
    (["t#g1/p0", "t#g2/p0", "t#g2/p1"], ["ok", "ok", "full"]),
    (["t/p0", "t#g2/p0"], ["ok", "ok"]),  # a record without a generation, then one with
    (["p0", "p1"], ["ok", "full"]),  # ids without a namespace: counted by tenant
])
def test_open_programs_are_counted_per_tenant_namespace(programs: list[str],
                                                       expected: list[str]) -> None:
    core = make_core()
    out = []
    for program_id in programs:
        try:
            core.register_program(program_id, "t", max_open=1)
            out.append("ok")
        except Overloaded:
            out.append("full")
    assert out == expected
    core.end_program(programs[0], "t")  # gives its own namespace's room back
    core.register_program(programs[0] + "-again", "t", max_open=1)


# Conversations (programs nobody ends: the OpenAI-compatible API's) count against the
# limit only while a call of theirs waits or runs. Steps: "c<i>" registers conversation i
# and submits its call, "e<i>" registers explicit program i, "done<i>" completes conv i's
# running call, "more<i>" submits another call to conversation i (not limited: it exists),
# "end<i>" ends program/conversation i. Limit 2, one worker slot.
@pytest.mark.parametrize(("steps", "expected"), [
    # two busy conversations hold the limit; once one's call is done a third may start
    (["c0", "c1", "c2", "done0", "c2"], ["ok", "ok", "full", "ok", "ok"]),
    # finished conversations never lock the tenant out (the reviewer's case: 5 one-turn chats)
    (["c0", "done0", "c1", "done1", "c2", "done2", "c3", "done3", "c4"], ["ok"] * 9),
    # an explicit program counts until it ends, busy or not
    (["e0", "c1", "c2", "done1", "c2", "end0", "done2", "c3"],
     ["ok", "ok", "full", "ok", "ok", "ok", "ok", "ok"]),
    # a conversation that continues is busy again; ended while busy, it frees its place
    (["c0", "done0", "more0", "c1", "c2", "end0", "c2"],
     ["ok", "ok", "ok", "ok", "full", "ok", "ok"]),
    # idle conversations continued at once (each turn registers again, as the gateway's
    # Admit does): the third to turn busy is refused (security review: 8 went through)
    (["c0", "done0", "c1", "done1", "c2", "c0", "c1"], ["ok"] * 6 + ["full"]),
    # one already busy takes another call without counting twice
    (["c0", "c1", "c0", "c1"], ["ok"] * 4),
])
def test_conversations_count_against_the_limit_only_while_busy(
        steps: list[str], expected: list[str]) -> None:
    priority, routing = parse_policy("fcfs+round_robin")
    core = PlannerCore(ManualClock(), priority, routing)
    core.upsert_worker("w0", "addr", 8)
    out = []
    for turn, step in enumerate(steps):
        i = step[-1]
        try:
            if step[0] == "c":
                core.register_program(f"p{i}", "t", max_open=2, conversation=True)
                core.submit(f"p{i}", "t", f"call{turn}")
                core.dispatch()
            elif step.startswith("end"):
                core.end_program(f"p{i}", "t")
            elif step[0] == "e":
                core.register_program(f"p{i}", "t", max_open=2)
            elif step.startswith("done"):
                (running,) = [c for c in core.program(f"p{i}", "t").calls.values()
                              if not c.state.finished]
                core.complete(f"p{i}", running.call_id)
            else:  # more<i>
                core.submit(f"p{i}", "t", f"call{turn}")
                core.dispatch()
            out.append("ok")
        except Overloaded:
            out.append("full")
    assert out == expected


def test_weights_can_change_but_must_be_positive() -> None:
    core = make_core()
    core.set_tenant_weights({"a": 3.0})
    with pytest.raises(ValueError, match="positive"):
        core.set_tenant_weights({"a": 0.0})


@pytest.mark.parametrize(("max_queued", "per_tenant", "children", "accepted"), [
    (10, 0, 20, 10),  # blocked children count: they queue unchecked once their parent ends
    (0, 5, 20, 5),
    (10, 5, 20, 5),
    (0, 0, 20, 20),
])
def test_calls_blocked_on_their_parents_count_against_the_bounds(
        max_queued: int, per_tenant: int, children: int, accepted: int) -> None:
    """Review F8: 1000 children of a running parent passed limits of 10 and 5 per tenant."""
    core = make_core(max_queued, per_tenant)
    core.register_program("p", "t")
    core.submit("p", "t", "root")
    core.dispatch()
    out = []
    for i in range(children):
        try:
            core.submit("p", "t", f"child{i}", parents=["root"])
            out.append("ok")
        except Overloaded:
            out.append("full")
    assert out == ["ok"] * accepted + ["full"] * (children - accepted)
    core.register_program("q", "u")  # another tenant: the overall bound only
    if max_queued == accepted:
        with pytest.raises(Overloaded, match="queue is full"):
            core.submit("q", "u", "x")
    core.complete("p", "root")
    assert core.queued == accepted and core._blocked == 0
    for _ in range(accepted):  # room frees as they run
        [grant] = core.dispatch()
        core.complete("p", grant.call_id)
    core.submit("p", "t", "again")
