"""A blocked call (a join) is queued once every parent has ended, whatever the order its
parents end, fail and run again in (planner/core/planner.py `_finish`; review F9: a parent
that had failed when the join came, retried before the others ended, left the join blocked
for good). Pure, clock-injected."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, PlannerCore
from planner.core.selection import parse_policy

Op = tuple[str, str]  # ("done" | "fail" | "retry" | "rerun", call id)


def _core() -> PlannerCore:
    prio, route = parse_policy("fcfs+round_robin")
    core = PlannerCore(ManualClock(), prio, route, worker_ttl_s=1e9, program_idle_ttl_s=100)
    core.upsert_worker("w0", "addr0", 8)
    core.register_program("p", "t")
    return core


def _apply(core: PlannerCore, op: Op) -> None:
    what, call_id = op
    call = core._programs["p"].calls[call_id]
    if what == "done":
        core.complete("p", call_id, attempt=call.attempt)
    elif what == "fail":
        core.complete("p", call_id, state=CallState.FAILED, attempt=call.attempt)
    elif what == "retry":  # its running attempt failed on its worker: the next one
        core.submit("p", "t", call_id, retry_of_attempt=call.attempt)
    else:  # "rerun": admitted again after it ended failed
        core.submit("p", "t", call_id)
    core.dispatch()


@pytest.mark.parametrize(("before", "after"), [
    # the join comes while both parents run
    ((), [("done", "A"), ("done", "B")]),
    ((), [("done", "B"), ("done", "A")]),
    ((), [("retry", "B"), ("done", "A"), ("done", "B")]),
    # B had failed when the join came (it waits on A only), then B runs again (F9)
    ([("fail", "B")], [("rerun", "B"), ("done", "A"), ("done", "B")]),
    ([("fail", "B")], [("rerun", "B"), ("done", "B"), ("done", "A")]),
    ([("fail", "B")], [("rerun", "B"), ("fail", "A"), ("rerun", "A"), ("done", "B"),
                       ("done", "A")]),
    ([("fail", "B")], [("rerun", "B"), ("done", "A"), ("retry", "B"), ("done", "B")]),
    ([("fail", "B")], [("rerun", "B"), ("done", "A"), ("fail", "B")]),  # ended: failed
])
def test_a_join_runs_once_every_parent_has_ended(before: tuple[Op, ...],
                                                 after: list[Op]) -> None:
    core = _core()
    core.submit("p", "t", "A")
    core.submit("p", "t", "B")
    core.dispatch()
    for op in before:
        _apply(core, op)
    join = core.submit("p", "t", "J", parents=["A", "B"])
    assert join.state is CallState.BLOCKED
    for op in after[:-1]:
        _apply(core, op)
        assert join.state is CallState.BLOCKED  # a parent still runs
    _apply(core, after[-1])
    assert join.state is CallState.RUNNING
    core.complete("p", "J")
    assert core._waiting_on == {}  # nothing left filed under a parent
    program = core._programs["p"]
    assert all(c.state.finished for c in program.calls.values())  # it may expire


def test_a_join_is_filed_under_a_parent_once() -> None:
    """Filed again under a parent it already waits on (another parent ended), it is
    looked at once when that parent ends."""
    core = _core()
    for call_id in "ABC":
        core.submit("p", "t", call_id)
    core.dispatch()
    core.submit("p", "t", "J", parents=["A", "B", "C"])
    core.complete("p", "A")
    core.complete("p", "B")
    assert list(core._waiting_on) == ["p/C"]
    assert list(core._waiting_on["p/C"]) == ["p/J"]


@pytest.mark.parametrize(("conversation", "parent", "state"), [
    # a conversation's next turn: its parent answered, its report not in yet (another
    # gateway batching it; replicas review 2026-12-05 F2): queued, not blocked
    (True, "running", CallState.QUEUED),
    (True, "queued", CallState.BLOCKED),  # a parent not started: waited for
    (True, "done", CallState.QUEUED),
    (False, "running", CallState.BLOCKED),  # a declared program's join waits as before
    (False, "done", CallState.QUEUED),
])
def test_a_conversations_call_waits_for_no_running_parent(conversation: bool, parent: str,
                                                         state: CallState) -> None:
    prio, route = parse_policy("fcfs+round_robin")
    core = PlannerCore(ManualClock(), prio, route, worker_ttl_s=1e9, program_idle_ttl_s=100)
    core.upsert_worker("w0", "addr0", 1)  # one slot: a second call queues
    core.register_program("p", "t", conversation=conversation)
    core.submit("p", "t", "busy")
    core.dispatch()
    a = core.submit("p", "t", "A")
    if parent != "queued":
        core.complete("p", "busy", attempt=1)
        core.dispatch()
        assert a.state is CallState.RUNNING
    if parent == "done":
        core.complete("p", "A", attempt=a.attempt)
    child = core.submit("p", "t", "B", parents=["A"])
    assert child.state is state
