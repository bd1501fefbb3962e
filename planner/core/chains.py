"""ATLAS's critical paths (planner/core/policies.py `Atlas`): the service along the longest
chain of calls a call continues. Those are its parents; a call that names none continues
its thread's previous call (an interactive program sends its calls one after another on
one thread, where ATLAS equals PLAS: a review found each such call scored 0, as if new).
A continued call that has not ended (a conversation's running parent, whose report may be
in a gateway's batch; a thread's previous call, running or still waiting for a slot or its
own parents) adds its service once it ends
(PlannerCore._finish): else each turn of a conversation started its chain again."""

from __future__ import annotations

from planner.core.model import CallRecord, Program


def continue_chain(program: Program, call: CallRecord,
                   existing: CallRecord | None) -> list[str]:
    """Sets `call.critical_path_s`; the calls it continues that have not ended (running,
    queued or blocked: their service to come). `existing`: the call's earlier record (a
    retry, or a re-admission)."""
    calls = program.calls
    if existing is not None and not call.parents:  # the chain its earlier attempt continued
        call.critical_path_s = existing.critical_path_s
        return []
    chain = call.parents
    if not chain:
        tail = program.thread_tails.get(call.thread_id)
        chain = (tail,) if tail is not None and tail in calls else ()
    if not chain:
        return []
    call.critical_path_s = max(calls[p].critical_path_s + calls[p].service_s for p in chain)
    return [p for p in chain if not calls[p].state.finished]
