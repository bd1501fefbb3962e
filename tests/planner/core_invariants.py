"""The planner core's bookkeeping, checked from outside after every step of the stateful
test (tests/planner/test_core_stateful.py): every index the core keeps (live calls, worker
slots, tenant counts, queue, parking, admission, blocked calls and the parents they wait on,
open and draining programs) agrees with the calls themselves. Written for the session-70
review that found three faults with it (docs/reviews/2026-12-07-s70/)."""

from __future__ import annotations

from planner.core import CallState, PlannerCore
from planner.core.model import Program


def check_consistent(core: PlannerCore) -> None:
    live = core._calls
    # every live call: unfinished, its program open or draining, the record its program holds
    for key, call in live.items():
        assert call.key == key
        assert not call.state.finished, f"finished call {key} ({call.state}) still live"
        program = core._programs.get(call.program_id) or core._draining.get(call.program_id)
        assert program is not None, f"live call {key} of no program"
        assert program.calls.get(call.call_id) is call, f"live call {key} not its program's"
        if call.program_id not in core._programs:
            assert call.state is CallState.RUNNING, f"{key} of an ended program is {call.state}"
        assert key not in core._orphans, f"{key} both live and orphan"
    # every unfinished call of an open program: live or an orphan
    for program in core._programs.values():
        for call in program.calls.values():
            if not call.state.finished:
                assert call.key in live or call.key in core._orphans, \
                    f"{call.key} ({call.state}) neither live nor orphan: lost"
            if program.closed:
                assert call.state in (CallState.RUNNING,) or call.state.finished or \
                    call.key in core._orphans, f"closed program's call {call.key} {call.state}"
    # worker slots
    for wid, w in core._workers.items():
        n = sum(1 for c in live.values() if c.state is CallState.RUNNING and c.worker_id == wid)
        assert w.inflight == n, f"worker {wid} inflight {w.inflight} != running {n}"
        assert w.inflight >= 0
        assert (wid in core._free) == (w.healthy and w.free > 0), f"free index off for {wid}"
        t_counts = {}
        for c in live.values():
            if c.state is CallState.RUNNING and c.worker_id == wid:
                t_counts[c.tenant] = t_counts.get(c.tenant, 0) + 1
        assert {t: n for t, n in w.tenants.items() if n} == t_counts, \
            f"worker {wid} tenants {w.tenants} != {t_counts}"
    for wid in core._free:
        assert wid in core._workers
    # tenant running counts
    running_of = {}
    for c in live.values():
        if c.state is CallState.RUNNING:
            running_of[c.tenant] = running_of.get(c.tenant, 0) + 1
    assert {t: n for t, n in core._shares._running.items() if n} == running_of, \
        f"shares running {core._shares._running} != {running_of}"
    # blocked counts
    blocked = [c for c in live.values() if c.state is CallState.BLOCKED]
    assert core._blocked == len(blocked), f"_blocked {core._blocked} != {len(blocked)}"
    by_t = {}
    for c in blocked:
        by_t[c.tenant] = by_t.get(c.tenant, 0) + 1
    assert {t: n for t, n in core._blocked_of.items() if n} == by_t
    # queue counts
    queued = [c for c in live.values() if c.state is CallState.QUEUED]
    in_q = [c for c in queued if c.in_queue]
    held = [c for c in queued if core._admission.holds(c)]
    assert len(core._queue) == len(in_q), f"queue len {len(core._queue)} != {len(in_q)}"
    lost = [c.key for c in queued if not c.in_queue and not core._admission.holds(c)]
    assert len(in_q) + len(held) == len(queued), f"queued, neither queued nor held: {lost}"
    assert len(core._admission) == len(held), "admission holds calls not live"
    assert core.queued == len(queued)
    # parked: each parked call is queued & live, in its worker's lane
    for key, entry in core._parked._parked.items():
        assert live.get(key) is entry, f"parked {key} not the live record"
        assert entry.state is CallState.QUEUED and entry.in_queue and entry.lane, key
    # open counts
    open_of = {}
    for p in core._programs.values():
        open_of[p.tenant] = open_of.get(p.tenant, 0) + 1
    assert {t: n for t, n in core._open_of.items() if n} == open_of
    # max_open counts: programs open, conversations only while busy
    limited = {}
    for p in core._programs.values():
        if p.conversation:
            n = sum(1 for c in live.values() if c.program_id == p.program_id)
            assert p.live == n, f"conversation {p.program_id} live {p.live} != {n}"
            if not n:
                continue
        limited[p.namespace] = limited.get(p.namespace, 0) + 1
    assert {k: n for k, n in core._limited_of.items() if n} == limited, \
        f"_limited_of {core._limited_of} != {limited}"
    # draining
    for pid, p in core._draining.items():
        n = sum(1 for c in live.values() if c.program_id == pid)
        assert pid not in core._programs
        assert p.live == n and n > 0, f"draining {pid} live {p.live} actual {n}"
    # waiting_on: parents are unfinished live/orphan calls
    for pkey in core._waiting_on:
        assert pkey in live or pkey in core._orphans, f"_waiting_on keeps ended parent {pkey}"
    # blocked calls wait on an unfinished parent
    for c in blocked:
        program = core._programs[c.program_id]
        unfinished = [p for p in c.parents if not program.calls[p].state.finished]
        assert unfinished, f"{c.key} BLOCKED with every parent finished"
        assert any(c.key in core._waiting_on.get(f"{c.program_id}/{p}", {})
                   for p in unfinished), f"{c.key} blocked but filed under none"


def check_ended(core: PlannerCore, program: Program) -> None:
    """Nothing of an ended program is left queued, held for admission or orphaned."""
    pid = program.program_id
    assert pid not in core._programs
    for call in program.calls.values():
        assert call.state in (CallState.RUNNING,) or call.state.finished, \
            f"{call.key} left {call.state} after its program ended"
        assert not call.in_queue, f"{call.key} still counted in the queue"
        assert not core._admission.holds(call)
        assert call.key not in core._orphans, f"{call.key} still an orphan"
    assert not core._admission.started(pid), "admission keeps an ended program"
