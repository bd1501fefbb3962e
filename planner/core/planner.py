"""PlannerCore: the program table, the global queue, admission budgets and routing.

Pure and synchronous: the service calls `submit`/`complete`/`cancel`, then `dispatch()`
to learn which calls now start where, then `take_events()` to persist what changed.
Per-decision cost is O(active tenants + queue levels + free workers), independent of the
number of queued calls: a call is parked on its home when it is queued, so a worker's free
slot reads only its own lane and the global one (planner/core/parking.py), and workers with
a free slot are indexed as slots free and fill, never scanned (`ostinato bench planner`
measures it, bench/planner_bench.py). Here: the core's state and the calls' lifecycle
(submit, then their end). The reports on running calls (complete, progress, cancel) are
in planner/core/reports.py; the programs' (register, restore, end, expire) and the
read-only views in planner/core/programs.py; the workers and `dispatch` in
planner/core/dispatch.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ostinato.clock import Clock
from planner.core.admission import ProgramAdmission
from planner.core.aging import LevelCrossings
from planner.core.attempts import readmission
from planner.core.chains import continue_chain
from planner.core.dispatch import WorkerDispatch, grant_of
from planner.core.estimates import OutputEstimator, ProgramSizeEstimator
from planner.core.model import (
    NO_WORKERS,
    CallChanged,
    CallRecord,
    CallRefused,
    CallState,
    Event,
    Overloaded,
    PlannerError,
    Program,
    ProgramClosed,
    UnknownParent,
    WorkerState,
    past_deadline,
)
from planner.core.parking import ParkedCalls
from planner.core.policies import LEVEL_STEP, PriorityPolicy
from planner.core.programs import ProgramTable
from planner.core.queue import MultiLevelQueue
from planner.core.reconcile import UnstartedGrants
from planner.core.reports import CallReports
from planner.core.routing import RoutingPolicy, least_loaded
from planner.core.starvation import StarvationBound
from planner.core.tenants import ISOLATION_BUDGET, ISOLATION_FRACTION, TenantShares
from planner.core.waiting_calls import WaitingCalls

__all__ = ["PlannerCore", "grant_of"]


class PlannerCore(ProgramTable, WorkerDispatch, CallReports, WaitingCalls):
    def __init__(
        self,
        clock: Clock,
        priority: PriorityPolicy,
        routing: RoutingPolicy,
        *,
        worker_ttl_s: float = 10.0,
        program_idle_ttl_s: float = 1800.0,
        declared_idle_ttl_s: float = 60.0,
        tenant_weights: Mapping[str, float] | None = None,
        starvation_ratio: float = 4.0,
        starvation_min_s: float = 1.0,
        starvation_max_s: float = 60.0,
        orphan_ttl_s: float = 60.0,
        max_home_wait_s: float = 2.0,
        tenant_shares: str = "waiting",
        max_queued: int = 0,
        max_queued_per_tenant: int = 0,
        kv_tokens_per_worker: int = 0,
        program_kv_fraction: float = 0.8,
        isolation_fraction: float = ISOLATION_FRACTION,
        isolation_budget: int = ISOLATION_BUDGET,
        program_admission: bool = True,
        program_kv_idle_s: float = 120.0,
        conversation_kv_idle_s: float = 10.0,
        unstarted_grant_s: float = 0.0,
    ) -> None:
        """`max_queued` / `max_queued_per_tenant`: calls waiting (queued, parked or waiting
        for their program to start) beyond which a new one is refused at once (Overloaded);
        0: unbounded (the simulator). `program_admission`: programs are admitted so that
        their contexts fit in `program_kv_fraction` of the healthy workers' KV pools
        (planner/core/admission.py), each pool as its worker reports it, else
        `kv_tokens_per_worker` (0: unknown; while no pool is known programs start at once);
        a program idle `program_kv_idle_s` no longer counts (expire()), a conversation (a
        program nobody ends: `register_program(conversation=True)`) idle
        `conversation_kv_idle_s`.
        `isolation_fraction`: of a worker's budget, what heavy tenants may fill while a
        light one is active (planner/core/tenants.py); `isolation_budget`: the budget a
        larger (uncapped) worker's is judged by for isolation (0: its own).
        `declared_idle_ttl_s`: a declared program (`register_program(declared=True)`) is
        expired once idle this long, an interactive one `program_idle_ttl_s`.
        `unstarted_grant_s`: how old a grant its worker does not know must be to end as lost
        (reconcile_worker; 0: never)."""
        if kv_tokens_per_worker < 0 or not 0 < program_kv_fraction <= 1:
            raise ValueError("need kv_tokens_per_worker >= 0 and 0 < program_kv_fraction <= 1")
        for name, seconds in (("worker_ttl_s", worker_ttl_s),
                              ("program_idle_ttl_s", program_idle_ttl_s),
                              ("declared_idle_ttl_s", declared_idle_ttl_s),
                              ("orphan_ttl_s", orphan_ttl_s),
                              ("program_kv_idle_s", program_kv_idle_s),
                              ("conversation_kv_idle_s", conversation_kv_idle_s),
                              ("unstarted_grant_s", unstarted_grant_s)):
            if not seconds >= 0:  # (nan: refused; inf: never)
                raise ValueError(f"{name} must be >= 0 seconds, got {seconds}")
        self._clock = clock
        self.max_queued = max_queued
        self.max_queued_per_tenant = max_queued_per_tenant
        self._open_of: dict[str, int] = {}  # tenant -> programs open
        # tenant -> programs counted against max_open: open ones, but conversations only
        # while a call of theirs waits or runs
        self._limited_of: dict[str, int] = {}
        self._priority = priority
        self._routing = routing
        self._worker_ttl_s = worker_ttl_s
        self._program_idle_ttl_s = program_idle_ttl_s
        self._declared_idle_ttl_s = declared_idle_ttl_s
        self._program_kv_idle_s = program_kv_idle_s
        self._conversation_kv_idle_s = conversation_kv_idle_s
        self._programs: dict[str, Program] = {}
        self._workers: dict[str, WorkerState] = {}
        self._by_id: list[WorkerState] | None = None  # workers sorted by id (cached)
        self._free: dict[str, WorkerState] = {}  # workers with a free slot
        self._queue = MultiLevelQueue(
            priority.thresholds, score_seconds=priority.score_seconds,
            starvation=StarvationBound(starvation_ratio, starvation_min_s, starvation_max_s),
            tenant_weights=tenant_weights)
        # the waiting calls whose scores age (slack's), by when they leave their levels
        self._crossings = LevelCrossings(priority.thresholds) if priority.ages else None
        self.estimator = OutputEstimator()
        self.program_sizes = ProgramSizeEstimator()
        self._calls: dict[str, CallRecord] = {}  # live (unfinished) calls by key
        self._draining: dict[str, Program] = {}  # ended programs with calls still running
        # parent key -> blocked child keys (a dict as an ordered set: a child is waiting on
        # each of its unfinished parents once, however often it is filed under them)
        self._waiting_on: dict[str, dict[str, None]] = {}
        self._blocked = 0  # live calls BLOCKED on their parents (restored orphans aside)
        self._blocked_of: dict[str, int] = {}  # tenant -> its calls of `_blocked`
        self._events: list[Event] = []
        # Restored waiting calls whose callers have not admitted them again: key -> (call, since)
        self._orphans: dict[str, tuple[CallRecord, float]] = {}
        self._orphan_ttl_s = orphan_ttl_s
        self._parked = ParkedCalls(max_home_wait_s, self._queue)
        # Tenant isolation (planner/core/tenants.py); its boost lifts a call above every level.
        self._shares = TenantShares(self._queue.fair_share.weight, hold=tenant_shares,
                                    queued=self._queue.global_size_of,
                                    parked_on=self._parked.count_on,
                                    backlog=self._queue.size_of,
                                    isolation_fraction=isolation_fraction,
                                    isolation_budget=isolation_budget)
        self._boost = (len(priority.thresholds) + 1) * LEVEL_STEP
        self._kv_per_worker = kv_tokens_per_worker
        self._kv_fraction = program_kv_fraction
        self._admission = ProgramAdmission(  # backlog: (calls waiting to run, running)
            self._queue.fair_share.weight, enabled=program_admission,
            backlog=lambda t: (self._queue.size_of(t), self._shares.running_of(t)))
        self._unstarted = UnstartedGrants(unstarted_grant_s)
        self._gone: dict[str, float] = {}  # workers gone with calls running -> since when

    def set_tenant_weights(self, weights: Mapping[str, float]) -> None:
        """Fair-share weights from the tenants' records (reloaded every 2 s; the shares of
        the workers worked out again only when one changed)."""
        if self._queue.fair_share.set_weights(weights):
            self._shares.invalidate()

    # ---- calls ---------------------------------------------------------------------

    def submit(
        self,
        program_id: str,
        tenant: str,
        call_id: str,
        *,
        thread_id: str = "main",
        parents: Iterable[str] = (),
        prompt_tokens: int = 0,
        max_new_tokens: int = 0,
        expected_output: int = 0,
        prefix_hashes: Iterable[int] = (),
        kv_matches: Mapping[str, int] | None = None,
        remaining_work: float = 0.0,
        served_from_cache: bool = False,
        retry_of_attempt: int = 0,
        exclude_workers: Iterable[str] = (),
        resend: bool = False,
        started_on: str = "",
        started_priority: int = 0,
    ) -> CallRecord:
        """Queues a call (or blocks it on its parents; in a conversation, on those not
        started only). One its gateway served from its cache is done at once.

        The same call id is admitted again as a retry, its next attempt: when its attempt
        `retry_of_attempt` failed on its worker (that attempt ends here if it still runs,
        and its children stay blocked), or when its last attempt ended FAILED or
        CANCELLED. A retry keeps the call's place in the queue and avoids the workers in
        `exclude_workers` and those its earlier attempts failed on. Otherwise an id seen
        before is a DuplicateCall, unless a restarted planner restored it (re-admission).
        `resend`: the caller never got the answer of an earlier attempt (its gateway died):
        the next attempt runs whatever that attempt's state, done included, on any worker.
        An attempt after the first keeps the parents the call was first admitted with (a
        retry naming others could make a cycle, both calls blocked for good: review U1).
        `started_on`: the worker its gateway sent it to ahead of the grant (an early start):
        started anywhere else, or there at another engine priority than `started_priority`
        (that run's), it runs as its next attempt (see `complete`)."""
        program = self.program(program_id, tenant)
        now = self._clock.now()
        arrival = now
        attempt, retry = 1, False
        excluded = (frozenset(exclude_workers) or NO_WORKERS) if exclude_workers else NO_WORKERS
        existing = program.calls.get(call_id)
        if existing is not None:
            again = readmission(existing, retry_of_attempt, resend, excluded)
            if isinstance(again, CallRecord):  # (a closed program's running call too: its
                return again  # caller lost the grant to a planner restart during the end)
            attempt, retry, excluded, arrival = (again.attempt, again.retry, again.excluded,
                                                 again.arrival)
        if program.closed:
            raise ProgramClosed(f"program {program_id!r} has ended")
        parents = tuple(parents) if existing is None else existing.parents
        calls = program.calls
        if parents and (missing := [p for p in parents if p not in calls or p == call_id]):
            raise UnknownParent(f"unknown parent call(s): {', '.join(missing)}")
        call = CallRecord(
            program_id=program_id,
            call_id=call_id,
            tenant=tenant,
            thread_id=thread_id or "main",
            parents=parents,
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new_tokens,
            arrival=arrival,
            expected_output=self.estimator.estimate(program.program_class, max_new_tokens,
                                                    expected_output),
            hint=expected_output,
            prefix_hashes=tuple(prefix_hashes),
            kv_matches=kv_matches,
            remaining_work=remaining_work,
            attempt=attempt,
            excluded=excluded,
            started_on=started_on,
            started_priority=started_priority,
        )
        continued = continue_chain(program, call, existing)  # ATLAS's critical path
        if existing is not None and served_from_cache:
            self._replace(existing, retry)
        if served_from_cache:
            call.state, call.finished_at = CallState.DONE, now
            call.prefix_hashes = ()  # as every ended call's (_finish)
            program.calls[call_id] = call
            program.last_active = now
            self._events.append(CallChanged(call))
            self._parent_ended(call, program)  # (a resend's: the calls filed under it go on)
            return call
        # A conversation's call waits for none of its parents that run: its prompt holds
        # their answers, and their reports may be in another gateway's batch
        unfinished = [p for p in parents if not calls[p].state.finished and not (
            program.conversation and calls[p].state is CallState.RUNNING)] if parents else ()
        if existing is None:  # a re-admitted call keeps its place
            self._check_room(tenant)
        if not unfinished:  # scored before it is recorded: DeadlineExceeded leaves no trace
            call.score = self._score(call, program, now)
        if existing is not None:
            self._replace(existing, retry)
        program.calls[call_id] = call
        if existing is None:  # (a retry does not make an older call its thread's latest)
            program.thread_tails[call.thread_id] = call_id
        program.last_active = now
        self._calls[call.key] = call
        if program.conversation:
            self._count_live(program, +1)
        self._shares.heard(tenant, now)
        if unfinished:
            call.state = CallState.BLOCKED
            self._count_blocked(tenant, +1)
            self._wait_on(call, unfinished)
        elif self._admission.admit(call):  # else it waits for its program to start
            self._file(call)
        self._wait_on(call, continued)  # (a chain's calls not ended: their service to come)
        self._events.append(CallChanged(call))
        return call

    def next_fresh_worker(self) -> WorkerState | None:
        """Where a call with no home and no cached prefix would start now, as least-load and
        affinity routing choose: the least loaded worker with a free slot (None: all full).
        A gateway starts such calls there ahead of their grant (gateway/early_guess.py)."""
        return least_loaded(list(self._free.values())) if self._free else None

    def _replace(self, existing: CallRecord, retry: bool) -> None:
        """The record of a call admitted again leaves: a retried attempt ends (its slot
        freed, its queue entry void), a restored waiting call stops being an orphan."""
        if retry:
            self._release(existing)
            existing.state = CallState.FAILED  # detached from the program: the new record counts
        else:
            self._orphans.pop(existing.key, None)

    def _check_room(self, tenant: str) -> None:
        """Overloaded unless the calls waiting (queued, parked, waiting for their program to
        start or blocked on their parents) leave room overall and for `tenant` (limits 0:
        unbounded). Blocked calls count: each enters the queue unchecked once its parents
        end (review F8: 1000 children of a running parent passed limits of 10)."""
        if self.max_queued and self.queued + self._blocked >= self.max_queued:
            raise Overloaded(f"the planner's queue is full ({self.max_queued} calls waiting)")
        per = self.max_queued_per_tenant
        if per and (self._queue.size_of(tenant) + self._admission.size_of(tenant)
                    + self._blocked_of.get(tenant, 0)) >= per:
            raise Overloaded(f"tenant {tenant!r} has {per} calls waiting, its limit")

    def _score(self, call: CallRecord, program: Program, now: float) -> float:
        """The call's priority score; a reject_when_late program past its deadline is refused
        under every policy (`slack` also refuses one whose slack has run out)."""
        if program.reject_when_late and program.deadline_at is not None \
                and now >= program.deadline_at:
            raise past_deadline(program.program_id, program.deadline_at, now)
        program.expected_remaining_work = self.program_sizes.remaining(program.program_class,
                                                                       program.attained_work)
        return self._priority.score(call, program, now)

    def _release(self, call: CallRecord) -> None:
        """Takes a call out of wherever it waits or runs: the global queue, its parking,
        its worker's budget, the live or orphaned calls. Its state is left to the caller."""
        if call.state is CallState.RUNNING:
            worker = self._workers.get(call.worker_id)
            if worker is not None:
                worker.inflight = max(0, worker.inflight - 1)
                self._track(worker)
            self._shares.running(call.tenant, worker, -1)
        elif self._admission.holds(call):
            self._admission.forget(call)
        elif call.state is CallState.QUEUED:  # in the global lane or parked on its home
            self._queue.discard(call)
        elif call.state is CallState.BLOCKED and self._calls.get(call.key) is call:
            self._count_blocked(call.tenant, -1)  # (a restored orphan was never counted)
        self._parked.forget(call)
        if self._calls.pop(call.key, None) is not None:
            program = self._programs.get(call.program_id)
            if program is not None and program.conversation:
                self._count_live(program, -1)
            elif program is None and (ended := self._draining.get(call.program_id)):
                ended.live -= 1  # a call of an ended program: its id is free once none runs
                if ended.live <= 0:
                    del self._draining[call.program_id]
        self._orphans.pop(call.key, None)
        call.recovered = False

    def _finish(self, call: CallRecord, state: CallState,
                refused: PlannerError | None = None) -> None:
        """`refused`: why a call that never started failed (its caller waits to hear)."""
        self._release(call)
        now = self._clock.now()
        self._shares.heard(call.tenant, now)
        call.state = state
        call.finished_at = now
        call.prefix_hashes = ()  # routing's alone: not kept with every record till the program ends
        program = self._programs.get(call.program_id)
        if program is not None:
            program.last_active = now
        self._events.append(CallChanged(call) if refused is None else CallRefused(call, refused))
        self._parent_ended(call, program)
