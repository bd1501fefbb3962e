"""Calls that wait on others: one blocked on its unfinished parents, and one that went on
without a parent that has not ended (a conversation's turn, a thread's next call: its critical
path grows by that parent's service, planner/core/chains.py), each filed under those
parents (`_waiting_on`) until they end. A mixin of PlannerCore (planner/core/planner.py),
whose state it reads and changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ostinato.clock import Clock
from planner.core.admission import ProgramAdmission
from planner.core.model import (
    CallChanged,
    CallRecord,
    CallState,
    DeadlineExceeded,
    Event,
    Program,
    call_key,
)
from planner.core.tenants import bump_count


class WaitingCalls:
    _clock: Clock
    _calls: dict[str, CallRecord]  # live (unfinished) calls by key
    # parent key -> waiting child keys (a dict as an ordered set: a child is filed under
    # each of its parents once, however often it is filed)
    _waiting_on: dict[str, dict[str, None]]
    _blocked: int  # live calls BLOCKED on their parents (restored orphans aside)
    _blocked_of: dict[str, int]  # tenant -> its calls of `_blocked`
    _admission: ProgramAdmission
    _events: list[Event]
    _finish: Callable[..., None]  # PlannerCore's: ends a call
    _file: Callable[..., None]  # WorkerDispatch's: queues a call
    _score: Callable[[CallRecord, Program, float], float]

    def _wait_on(self, call: CallRecord, parents: Iterable[str]) -> None:
        """Files a call under each of `parents` (unfinished): each one's end looks at it."""
        waiting_on = self._waiting_on
        for p in parents:
            waiting_on.setdefault(call_key(call.program_id, p), {})[call.key] = None

    def _count_blocked(self, tenant: str, delta: int) -> None:
        """A live call of `tenant` became BLOCKED (+1) or left that state (-1)."""
        self._blocked += delta
        bump_count(self._blocked_of, tenant, delta)

    def _enqueue(self, call: CallRecord, program: Program) -> None:
        """A blocked call whose parents all ended joins the queue."""
        self._count_blocked(call.tenant, -1)
        call.state = CallState.QUEUED
        now = self._clock.now()
        call.score = self._score(call, program, now)
        if self._admission.admit(call):
            self._file(call, since=now)

    def _parent_ended(self, call: CallRecord, program: Program | None) -> None:
        """`call` ended (however: done, failed, or answered from the cache for a resend):
        each call filed under it learns its service; a blocked one whose parents have all
        ended joins the queue."""
        for child_key in self._waiting_on.pop(call.key, ()):
            child = self._calls.get(child_key)
            if child is None or program is None:
                continue
            if child.state is not CallState.BLOCKED:  # it went on without `call`: now its
                child.critical_path_s = max(child.critical_path_s,  # service is known
                                            call.critical_path_s + call.service_s)
                continue
            unfinished = [p for p in child.parents if not program.calls[p].state.finished]
            if unfinished:  # a parent that had ended when the child came runs again (its
                self._wait_on(child, unfinished)  # retry): the child waits on it too
            else:
                child.critical_path_s = max(program.calls[p].critical_path_s
                                            + program.calls[p].service_s for p in child.parents)
                try:
                    self._enqueue(child, program)
                except DeadlineExceeded as exc:
                    self._finish(child, CallState.FAILED, refused=exc)
                    continue
                self._events.append(CallChanged(child))
