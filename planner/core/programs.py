"""The program table: programs registered, restored after a restart, ended and expired,
and the read-only views of the planner's state (metrics). A mixin of PlannerCore
(planner/core/planner.py), whose state it reads and changes; the calls' lifecycle (submit,
complete, cancel) is there, the workers and `dispatch` in planner/core/dispatch.py.
"""

from __future__ import annotations

from collections.abc import Callable

from ostinato.clock import Clock
from ostinato.program_ids import namespace_of
from planner.core.admission import ProgramAdmission
from planner.core.estimates import ProgramSizeEstimator
from planner.core.model import (
    CallChanged,
    CallRecord,
    CallState,
    DuplicateCall,
    Event,
    Overloaded,
    Program,
    ProgramEnded,
    ProgramIdInUse,
    ProgramRegistered,
    UnknownProgram,
    WorkerState,
    work_of,
)
from planner.core.parking import ParkedCalls
from planner.core.queue import MultiLevelQueue
from planner.core.tenants import TenantShares, bump_count


class ProgramTable:
    _clock: Clock
    _programs: dict[str, Program]
    _workers: dict[str, WorkerState]
    _calls: dict[str, CallRecord]  # live (unfinished) calls by key
    # ended program id -> the program, while calls of it still run (`live` counts them,
    # their reports to come): the id is not registered again until they end (review F5)
    _draining: dict[str, Program]
    _orphans: dict[str, tuple[CallRecord, float]]  # restored waiting calls: key -> (call, since)
    _orphan_ttl_s: float
    _open_of: dict[str, int]  # tenant -> programs open
    # a tenant's namespace (Program.namespace) -> its programs counted against max_open
    _limited_of: dict[str, int]
    _worker_ttl_s: float
    _program_idle_ttl_s: float
    _declared_idle_ttl_s: float
    _program_kv_idle_s: float
    _conversation_kv_idle_s: float
    _queue: MultiLevelQueue
    _parked: ParkedCalls
    _shares: TenantShares
    _admission: ProgramAdmission
    _events: list[Event]
    program_sizes: ProgramSizeEstimator
    _track: Callable[[WorkerState], None]  # WorkerDispatch's: keeps the free-worker index
    remove_worker: Callable[[str], None]  # WorkerDispatch's
    end_gone: Callable[[float], list[CallRecord]]  # WorkerDispatch's: calls of gone workers
    _gone: dict[str, float]  # WorkerDispatch's: workers gone with calls running -> since
    _finish: Callable[[CallRecord, CallState], None]  # PlannerCore's: ends a call

    # ---- programs ------------------------------------------------------------------

    def register_program(
        self,
        program_id: str,
        tenant: str,
        *,
        deadline_s: float | None = None,
        reject_when_late: bool = False,
        program_class: str = "",
        max_open: int = 0,
        conversation: bool = False,
        registration: str = "",
        declared: bool = False,
    ) -> Program:
        """`max_open`: the tenant's limit on programs open at once (0: none): programs it
        registered and has not ended, and conversations with a call waiting or running.
        `conversation`: a program nobody ends (the gateway's, for requests that name no
        program): it counts against `max_open` only while busy, its working set only until
        idle `conversation_kv_idle_s`, and it is expired like any idle program.
        `registration`: the caller's id of this registration, kept on the program.
        `declared`: a DAG its gateway drives and ends (RunProgram): expired once idle
        `declared_idle_ttl_s` (its gateway gone), not `program_idle_ttl_s`.
        ProgramIdInUse while calls of an ended program of the same id still run: the
        records of the two runs (keyed by program and call id) must not be confused."""
        existing = self._programs.get(program_id)
        if existing is not None:
            if existing.tenant != tenant:  # never reveal another tenant's program
                raise DuplicateCall(f"program id {program_id!r} is taken")
            if existing.conversation and not existing.live:  # an idle one turns busy
                self._check_open(existing.namespace, tenant, max_open, conversation=True)
            return existing
        if (ended := self._draining.get(program_id)) is not None:
            if ended.tenant != tenant:
                raise DuplicateCall(f"program id {program_id!r} is taken")
            raise ProgramIdInUse(
                f"program id {program_id!r} is still in use: {ended.live} call(s) of its "
                f"ended run still running; register it again once they end, or use another id")
        self._check_open(namespace_of(program_id, tenant), tenant, max_open, conversation)
        now = self._clock.now()
        program = Program(
            program_id=program_id,
            tenant=tenant,
            created_at=now,
            deadline_at=None if deadline_s is None else now + deadline_s,
            reject_when_late=reject_when_late,
            program_class=program_class,
            last_active=now,
            conversation=conversation,
            registration=registration,
            declared=declared,
        )
        self._programs[program_id] = program
        self._open_of[tenant] = self._open_of.get(tenant, 0) + 1
        if not conversation:
            bump_count(self._limited_of, program.namespace, +1)
        self._events.append(ProgramRegistered(program))
        return program

    def _check_open(self, namespace: str, tenant: str, max_open: int,
                    conversation: bool) -> None:
        """Overloaded when one more program (or busy conversation) would pass `max_open`."""
        if max_open and self._limited_of.get(namespace, 0) >= max_open:
            what = "programs open or conversations busy" if conversation else "programs open"
            raise Overloaded(f"tenant {tenant!r} has {max_open} {what}, its limit"
                             + ("" if conversation else ": end one first"))

    def _count_live(self, program: Program, delta: int) -> None:
        """A conversation's call started waiting (+1) or ended (-1): while it has one it
        counts against its tenant's max_open."""
        was = program.live
        program.live = was + delta
        if not was:
            bump_count(self._limited_of, program.namespace, +1)
        elif not program.live:
            bump_count(self._limited_of, program.namespace, -1)

    def restore(self, program: Program) -> None:
        """Takes back a program that a previous planner process persisted (planner/records.py).

        Finished calls are history. A running call stays running on its worker: the worker's
        completion report finishes it, and a re-admission (its caller never got the grant)
        returns the same grant. A queued or blocked call waits for its caller to admit it
        again, keeping its arrival time; one not re-admitted within `orphan_ttl_s` is dropped.
        No call is started twice, and none is started without a caller waiting for it.
        """
        if program.program_id in self._programs:
            return
        now = self._clock.now()
        self._programs[program.program_id] = program
        self._open_of[program.tenant] = self._open_of.get(program.tenant, 0) + 1
        program.live = 0
        program.thread_tails = {c.thread_id: c.call_id for c in sorted(  # (records come in
            program.calls.values(), key=lambda c: c.arrival)}  # no order from Redis's hash)
        if not program.conversation:
            bump_count(self._limited_of, program.namespace, +1)
        program.attained_service_s = sum(c.service_s for c in program.calls.values()
                                         if c.state.finished)
        program.attained_work = sum(work_of(c.completion_tokens, c.prompt_tokens_used
                                            - c.cached_tokens)
                                    for c in program.calls.values() if c.state.finished)
        ran = [c for c in program.calls.values()
               if c.state.finished or c.state is CallState.RUNNING]
        if ran:
            self._admission.restored(program.program_id, program.tenant, sum(
                max(0, c.prompt_tokens_used - c.cached_tokens) + c.completion_tokens
                if c.state.finished else c.prompt_tokens for c in ran))
        for call in program.calls.values():
            if call.state.finished:
                continue
            call.recovered = True
            if call.state is CallState.RUNNING:
                self._calls[call.key] = call
                if program.conversation:
                    self._count_live(program, +1)
                worker = self._workers.get(call.worker_id)
                if worker is not None:
                    worker.inflight += 1
                    self._track(worker)
                else:  # its worker registers again soon, or it ends (end_gone)
                    self._gone.setdefault(call.worker_id, now)
                self._shares.running(call.tenant, worker, +1)
            else:
                self._orphans[call.key] = (call, now)

    def program(self, program_id: str, tenant: str) -> Program:
        program = self._programs.get(program_id)
        if program is None or program.tenant != tenant:
            raise UnknownProgram(f"no program {program_id!r}")
        return program

    def thought(self, program_id: str, call_id: str, attempt: int,
                reasoning_tokens: int) -> None:
        """A finished call's thinking, counted by the gateway (Usage.reasoning_tokens): its
        report of `attempt` (0: any) may come after the worker's, which cannot count it.
        Kept with the record."""
        program = self._programs.get(program_id)
        call = None if program is None else program.calls.get(call_id)
        if call is not None and call.state is CallState.DONE and (
                not attempt or attempt == call.attempt) and reasoning_tokens > call.reasoning_tokens:
            call.reasoning_tokens = min(reasoning_tokens, call.completion_tokens)
            self._events.append(CallChanged(call))

    def close_program(self, program_id: str, tenant: str) -> Program:
        """Ending's first step: no call of the program starts from now. Its queued and
        blocked calls are cancelled and a new one is refused (ProgramClosed); those running
        run on until `end_program` (the service waits for them a while between the two:
        live review 2026-12-07 F1, its queued calls were granted one after another while
        EndProgram waited for the running one)."""
        program = self.program(program_id, tenant)
        first = not program.closed
        self._close(program)
        if first:  # written with the program (after its cancelled calls): a restarted
            self._events.append(ProgramRegistered(program, fresh=False))  # planner keeps it
            # closed
        return program

    def _close(self, program: Program) -> None:
        for call in program.calls.values():
            if call.state in (CallState.QUEUED, CallState.BLOCKED):
                self._finish(call, CallState.CANCELLED)
        program.closed = True

    def end_program(self, program_id: str, tenant: str) -> Program:
        program = self.program(program_id, tenant)
        self._close(program)
        del self._programs[program_id]
        self._admission.end(program_id)
        bump_count(self._open_of, tenant, -1)
        if not program.conversation or program.live:  # (its running calls end unseen)
            bump_count(self._limited_of, program.namespace, -1)
        # its calls still running: their reports are still to come, under this id
        program.live = sum(1 for c in program.calls.values() if not c.state.finished)
        if program.live:
            self._draining[program_id] = program  # until they end (PlannerCore._release)
        calls = program.calls.values()
        if calls and all(c.state is CallState.DONE for c in calls):  # ran to the end: its size
            self.program_sizes.observe(program.program_class, program.attained_work)
        self._events.append(ProgramEnded(program))
        return program

    # ---- housekeeping --------------------------------------------------------------

    def expire(self) -> list[str]:
        """Drops workers not heard from (and the calls still running on workers gone
        worker_ttl_s: `end_gone`) and idle programs; returns expired program ids."""
        now = self._clock.now()
        for worker in list(self._workers.values()):
            if now - worker.last_seen > self._worker_ttl_s:
                self.remove_worker(worker.worker_id)
        if self._gone:
            self.end_gone(now)
        for call, since in list(self._orphans.values()):
            if now - since > self._orphan_ttl_s:
                self._finish(call, CallState.CANCELLED)
        expired = []
        for program in list(self._programs.values()):
            busy = program.live > 0 if program.conversation else \
                any(not c.state.finished for c in program.calls.values())
            if busy:
                continue
            idle = now - program.last_active
            if idle > (self._declared_idle_ttl_s if program.declared
                       else self._program_idle_ttl_s):
                self.end_program(program.program_id, program.tenant)
                expired.append(program.program_id)
            elif idle > (self._conversation_kv_idle_s if program.conversation
                         else self._program_kv_idle_s):
                self._admission.dormant(program.program_id)
        return expired

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # ---- read-only views (metrics) ----------------------------------------------------

    def queue_depths(self) -> dict[tuple[str, int], int]:
        """Calls in the global queue per (tenant, level)."""
        return self._queue.depths()

    def parked_counts(self) -> dict[tuple[str, str], int]:
        """Calls parked on their home worker per (worker, tenant)."""
        return self._parked.counts()

    def admission_waiting(self) -> dict[str, int]:
        """Calls waiting for their program to start (program admission), per tenant."""
        return self._admission.waiting_calls()

    @property
    def programs_open(self) -> int:
        return len(self._programs)

    @property
    def queued(self) -> int:
        """Calls waiting to start: in the global queue, parked on their home worker, or
        waiting for their program to start."""
        return len(self._queue) + len(self._admission)  # parked calls: in the queue's lanes

    def waiting_to_start(self, tenant: str) -> tuple[int, int]:
        """(programs, calls) of `tenant` waiting for program admission."""
        return self._admission.waiting_programs(tenant), self._admission.size_of(tenant)

    def working_set(self, tenant: str | None = None) -> int:
        """KV tokens the started programs (of `tenant`; None: of all) are counted to hold."""
        return self._admission.working_set(tenant)
