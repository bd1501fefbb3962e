"""PlannerCore's workers and dispatch: the calls that start now, and on which worker.

The worker registry keeps an index of the workers with a free slot, updated as slots free
and fill, so that `dispatch` never scans the workers. `dispatch` starts calls parked on a
worker first, then queued calls in fair-share order, each on a free worker that its
tenant's share lets it use, as the routing policy chooses. A mixin of PlannerCore
(planner/core/planner.py), whose state it reads and changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from ostinato.clock import Clock
from planner.core.admission import ProgramAdmission
from planner.core.attempts import started_early
from planner.core.late_calls import LateCalls
from planner.core.model import (
    CallRecord,
    CallState,
    Event,
    Grant,
    Program,
    WorkerState,
    call_changed,
    new_grant,
)
from planner.core.parking import ParkedCalls
from planner.core.policies import PriorityPolicy, engine_priority
from planner.core.queue import GLOBAL, MultiLevelQueue
from planner.core.reconcile import CallAttempt, UnstartedGrants
from planner.core.routing import RoutingPolicy, route
from planner.core.tenants import TenantShares


def grant_of(call: CallRecord) -> Grant:
    """The grant of a running call (also re-sent when a restarted planner is asked again)."""
    queued = (call.dispatched_at or call.arrival) - call.arrival
    matched = call.kv_matches.get(call.worker_id, 0) if call.kv_matches else 0
    return new_grant(call.program_id, call.call_id, call.worker_id, call.worker_address,
                     call.priority, queued, matched, call.parked_s, call.attempt)


def _unpark(call: CallRecord, now: float) -> None:
    if call.parked_since is not None:
        call.parked_s += now - call.parked_since
        call.parked_since = None


def _has_siblings(call: CallRecord, program: Program) -> bool:
    """Whether the program has another call with the same parents (the call is one of a
    fan-out's; O(the program's calls), on a release only)."""
    parents = call.parents
    return any(c is not call and c.parents == parents for c in program.calls.values())


class WorkerDispatch(LateCalls):
    _clock: Clock
    _priority: PriorityPolicy
    _routing: RoutingPolicy
    _programs: dict[str, Program]
    _workers: dict[str, WorkerState]
    _by_id: list[WorkerState] | None  # workers sorted by id (cached)
    _free: dict[str, WorkerState]  # workers with a free slot
    _calls: dict[str, CallRecord]  # live (unfinished) calls by key
    _queue: MultiLevelQueue
    _parked: ParkedCalls
    _shares: TenantShares
    _admission: ProgramAdmission
    _open_of: dict[str, int]  # tenant -> programs open
    _kv_per_worker: int  # each worker's engine's KV pool, tokens (0: unknown)
    _kv_fraction: float  # of the pools, what started programs' contexts may hold
    _boost: int  # lifts a call above every level (tenant isolation)
    _events: list[Event]
    _unstarted: UnstartedGrants  # lost grants (planner/core/reconcile.py)
    _worker_ttl_s: float
    # workers that left with calls running (or were not back when their calls were
    # restored) -> since when: calls still running there end FAILED past worker_ttl_s
    _gone: dict[str, float]
    _finish: Callable[..., None]  # PlannerCore's: ends a call (refused: why it never started)


    def upsert_worker(
        self, worker_id: str, address: str, max_inflight: int, simulated: bool = False,
        healthy: bool = True, kv_tokens: int = 0,
    ) -> None:
        """Registers a worker, or refreshes it (a heartbeat). An unhealthy one (its engine
        failed its health check) stays registered, its running calls counted, but nothing
        starts there, and the calls parked on it go back to the global queue. `kv_tokens`:
        its engine's KV pool (0: unknown; the planner's kv_tokens_per_worker then)."""
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        now = self._clock.now()
        worker = self._workers.get(worker_id)
        if worker is None:
            # After a planner restart, calls restored as running on this worker count again.
            running = [c for c in self._calls.values()
                       if c.state is CallState.RUNNING and c.worker_id == worker_id]
            worker = self._workers[worker_id] = WorkerState(
                worker_id, address, max_inflight, last_seen=now, simulated=simulated,
                inflight=len(running), kv_tokens=kv_tokens,
            )
            for c in running:
                worker.tenants[c.tenant] = worker.tenants.get(c.tenant, 0) + 1
            self._routing.forget(worker_id)  # a worker of this id before: its engine is new
            self._gone.pop(worker_id, None)  # back: its running calls count here again
            self._by_id = None
            self._unstarted.seen(worker_id, now)
            resize = True
        else:
            resize = (worker.healthy != healthy or worker.kv_tokens != kv_tokens
                      or worker.max_inflight != max_inflight)
            worker.address, worker.max_inflight = address, max_inflight
            worker.kv_tokens = kv_tokens
            worker.last_seen, worker.simulated = now, simulated
        if worker.healthy and not healthy:
            for call in self._parked.release_worker(worker_id):
                _unpark(call, now)
                self._queue.push(call, since=call.queued_at)
        worker.healthy = healthy
        self._track(worker)
        if resize:
            self._resize_admission()

    def reconcile_worker(self, worker_id: str, known: Collection[CallAttempt]) -> list[CallRecord]:
        """A worker's heartbeat listed the calls it knows (program_id, call_id, attempt; 0:
        any attempt): its running calls that it does not know, granted more than
        unstarted_grant_s ago, were never started or were lost (planner/core/reconcile.py).
        They end CANCELLED, their slots freed; returns them. O(live calls), only while the
        worker has a call running."""
        worker = self._workers.get(worker_id)
        if worker is None or worker.inflight == 0 or self._unstarted.min_age_s <= 0:
            return []
        running = [c for c in self._calls.values()
                   if c.state is CallState.RUNNING and c.worker_id == worker_id]
        lost = self._unstarted.lost(worker_id, running, known, self._clock.now())
        for call in lost:
            self._finish(call, CallState.CANCELLED)
        return lost

    @property
    def calls_parked(self) -> int:
        """Calls parked on their home so far (planner/core/parking.py; `ostinato bench
        planner` counts those parked on the way to each decision)."""
        return self._parked.total

    @property
    def unstarted_grants(self) -> int:
        """Lost grants ended so far (reconcile_worker)."""
        return self._unstarted.total

    def _resize_admission(self) -> None:
        """Program admission's capacity: the healthy workers' KV pools, as each reports it or
        else kv_tokens_per_worker (planner/core/admission.py); 0: unknown, no limit. And the
        healthy workers, as tenant isolation judges them (planner/core/tenants.py `judge`)."""
        healthy = [w for w in self._workers.values() if w.healthy]
        pools = sum(w.kv_tokens or self._kv_per_worker for w in healthy)
        self._admission.capacity = int(pools * self._kv_fraction)
        self._shares.judge(healthy)  # tenant isolation on workers above its budget

    def _track(self, worker: WorkerState) -> None:
        """Keeps the index of workers with a free slot (call after inflight changes)."""
        if worker.free > 0 and worker.healthy and self._workers.get(worker.worker_id) is worker:
            self._free[worker.worker_id] = worker
        else:
            self._free.pop(worker.worker_id, None)

    def remove_worker(self, worker_id: str) -> None:
        """The worker left (DeregisterWorker, or expire() past worker_ttl_s): its parked calls
        go back to the global lane; its running calls end FAILED once it has been gone
        worker_ttl_s with no report of theirs (`end_gone`), their callers may run them again."""
        worker = self._workers.pop(worker_id, None)
        self._free.pop(worker_id, None)
        self._unstarted.forget(worker_id)
        self._by_id = None
        now = self._clock.now()
        if worker is not None and worker.inflight:
            self._gone[worker_id] = now
        for call in self._parked.release_worker(worker_id):
            _unpark(call, now)
            self._queue.push(call, since=call.queued_at)
        self._queue.drop_lane(worker_id)  # its calls moved out: nothing waits there
        self._routing.forget(worker_id)
        self._resize_admission()

    def end_gone(self, now: float) -> list[CallRecord]:
        """Calls still running on a worker gone worker_ttl_s (not registered again) end
        FAILED: no report will come (the gateway that held the grant may be gone too), and
        a call never ended keeps its program open and its tenant active for good. A scan of
        the live calls per worker gone, once (expire())."""
        due = [w for w, since in self._gone.items() if now - since > self._worker_ttl_s]
        if not due:
            return []
        for worker_id in due:
            del self._gone[worker_id]
        ended = [c for c in self._calls.values()
                 if c.state is CallState.RUNNING and c.worker_id in due]
        for call in ended:
            self._finish(call, CallState.FAILED)
        return ended

    def worker(self, worker_id: str) -> WorkerState | None:
        return self._workers.get(worker_id)

    @property
    def workers(self) -> list[WorkerState]:
        return list(self._sorted_workers())

    def _sorted_workers(self) -> list[WorkerState]:
        if self._by_id is None:
            self._by_id = sorted(self._workers.values(), key=_worker_id)
        return self._by_id

    def _free_workers(self) -> list[WorkerState]:
        """Workers with a free slot, by id."""
        free = list(self._free.values())
        if len(free) > 1:
            free.sort(key=_worker_id)
        return free

    def dispatch(self) -> list[Grant]:
        """Starts queued calls while workers have budget; returns the grants made.

        Programs waiting for admission (planner/core/admission.py) that now fit start first,
        their calls joining the queue (whether a worker is free or not). Each worker with a
        free slot, by id, takes the next call of its own lane (the calls parked on it, their
        home: planner/core/parking.py) and of the global lane together, in fair-share and
        priority order, while its tenants' shares let it; a call of the global lane goes
        where the routing policy chooses among the free workers. Calls parked
        `max_home_wait_s` join the global lane once a call queued that long after them
        starts elsewhere, or for slots that would stay free (planner/core/parking.py)."""
        grants: list[Grant] = []
        now = self._clock.now()
        queue = self._queue
        # Programs whose working sets now fit start, every worker busy or not: their calls
        # take their place in the queue as they come (released only with a slot free, a new
        # program's first call queued behind calls that came after it: fcfs broken).
        if len(self._admission):
            for call in self._admission.release():
                if self._crossings is not None:  # scored as it came: an aging score again
                    score = self._rescore(call, now)
                    if score is None:
                        continue  # refused: late
                    call.score = score
                self._file(call, since=now)
        if not self._free:
            return grants
        self._age(now)  # aging scores (slack's) that have left their levels move
        if self._parked.expired(now):  # passed-by calls parked long enough go global
            self._keep_home(self._parked.release_due(now), now)
        shares = self._shares
        if not shares.unchanged(queue.counted_tenants(), now):
            shares.refresh_from(queue.active_tenants(), now, self._open_of)
        shares.observe(now)
        if not len(queue):
            return grants
        for worker in self._free_workers():
            if worker.inflight < worker.max_inflight and worker.worker_id in self._free:
                self._serve(worker, now, grants)
            if not len(queue):
                break
        if self._free and (released := self._parked.release_expired(now)):  # to the global
            self._keep_home(released, now)  # lane
            for worker in self._free_workers():  # slots nothing else takes: calls parked
                self._serve(worker, now, grants)  # max_home_wait_s may run there
        if grants and self._parked.starving(now):  # calls started while parked ones are
            self._parked.release_starving(now)  # past their bounds: those go first next
        return grants

    def _keep_home(self, released: list[CallRecord], now: float) -> None:
        """Of the calls just released from their homes by time, those whose home is above
        the isolation budget (uncapped), healthy and with a free slot, while several tenants
        are active: tenant isolation alone held them there. They park there again
        (planner/core/parking.py), until queued `starvation_max_s`: moved, each would
        re-prefill its context on another engine, most often the light tenant's. Not a call
        with siblings (the same parents): a fan-out's calls moved prefill their shared
        context once there and spread its decoding (kept home, `mixed`'s `lats` programs
        took 11% longer at 12 programs/s, p99 +51%: SIMULATED, docs/bench/isolation)."""
        shares = self._shares
        if not released or not shares.isolating or not shares.loads.judging:
            return  # (judging: some healthy worker is above the isolation budget)
        workers, routing, programs = self._workers, self._routing, self._programs
        longest = self._queue.starvation.max_s
        for call in released:
            if now - call.queued_at >= longest:
                continue
            program = programs[call.program_id]
            home = workers.get(routing.home(call, program))
            if home is not None and home.healthy and home.inflight < home.max_inflight \
                    and shares.judges(home) and home.worker_id not in call.excluded \
                    and not _has_siblings(call, program):
                self._parked.park_again(call, home.worker_id, now)

    def _serve(self, worker: WorkerState, now: float, grants: list[Grant]) -> None:
        """Fills the worker's free slots from its lane and the global lane (a global call
        may be routed to another free worker)."""
        queue, shares, worker_id = self._queue, self._shares, worker.worker_id
        lanes = (GLOBAL, worker_id) if self._parked.waiting_on(worker_id) else (GLOBAL,)
        while worker.inflight < worker.max_inflight:
            # the first tenant in fair share that the shares let onto this worker
            tenant = queue.first_tenant(lanes, shares.admitted(worker))
            if tenant is None:
                return  # nothing here that the tenants' shares let onto this worker
            call = queue.pop_tenant(tenant, now, lanes)
            if call is None:
                continue  # the tenant's lanes ran dry: others may be let on now
            if self._programs[call.program_id].reject_when_late \
                    and self._refused_late(call, now):
                continue
            if call.lane == worker_id:  # parked here, its home
                grants.append(self._start(call, worker, now))
            elif (target := self._place(call, now, worker)) is not None:
                grants.append(self._start(call, target, now))
            else:
                continue
            parked = self._parked
            if parked.expired(now):  # calls this one passed by, parked long enough, are due
                parked.passed(queue.level_of(call.score), call.queued_at)

    def _file(self, call: CallRecord, since: float | None = None) -> None:
        """Queues a call: parked on its home worker (the routing policy's `home`) when it
        has one that is registered, healthy and not excluded, else in the global lane. Its
        place in the queue counts from `since` (default: its arrival)."""
        parked = self._parked
        if parked.may_park(call):
            home = self._workers.get(self._routing.home(call, self._programs[call.program_id]))
            if home is not None and home.healthy and home.worker_id not in call.excluded:
                parked.park(call, home.worker_id, self._clock.now(), since)
                self._watch(call, self._clock.now())
                return
        self._queue.push(call, since)
        self._watch(call, self._clock.now())

    def _place(self, call: CallRecord, now: float, serving: WorkerState) -> WorkerState | None:
        """Where a call of the global lane starts: a free worker its tenant's share lets it
        onto, as the routing policy chooses; None if it was parked instead (its home, set
        since it was queued, is full; or every such worker failed it). `serving`: the worker
        whose free slot popped the call, after its tenant passed `serving`'s gate; popping it
        only lowered that tenant's own waiting counts, which never turns the gate against it
        (planner/core/tenants.py, `TenantShares.gate`), so `serving` is not asked again: on
        the decision path, most calls of the global lane start there."""
        program, tenant, shares = self._programs[call.program_id], call.tenant, self._shares
        parked = self._parked
        if parked.may_park(call):
            home = self._workers.get(self._routing.home(call, program))
            if home is not None and home.healthy and home.worker_id not in call.excluded \
                    and not (home.inflight < home.max_inflight  # a free slot (`free`)
                             and (home is serving or shares.allows(tenant, home))):
                parked.park(call, home.worker_id, now, call.queued_at)
                return None
        if len(self._free) == 1 and self._free.get(serving.worker_id) is serving:
            candidates = [serving]  # the decision path's: the one free slot popped the call
        elif shares.isolating:
            candidates = [w for w in self._free_workers()
                          if w is serving or shares.allows(tenant, w)]
        else:
            candidates = self._free_workers()
        if call.excluded:
            others = [w for w in candidates if w.worker_id not in call.excluded]
            if not others and (elsewhere := self._elsewhere(call)) is not None \
                    and parked.may_park(call):
                parked.park(call, elsewhere.worker_id, now, call.queued_at)  # wait for a
                return None  # worker that has not failed it, while one is healthy
            candidates = others or candidates
        return route(call, program, self._routing, candidates, self._sorted_workers())

    def _elsewhere(self, call: CallRecord) -> WorkerState | None:
        """The least loaded healthy worker that no earlier attempt of `call` failed on (a
        scan of the workers: only for retried calls, which are rare)."""
        others = [w for w in self._sorted_workers()
                  if w.healthy and w.worker_id not in call.excluded]
        return min(others, key=lambda w: w.inflight / w.max_inflight, default=None)

    def _start(self, call: CallRecord, worker: WorkerState, now: float) -> Grant:
        program = self._programs[call.program_id]
        self._parked.forget(call)
        if call.parked_since is not None:  # _unpark's, inlined
            call.parked_s += now - call.parked_since
            call.parked_since = None
        call.priority = engine_priority(self._priority, call.score)
        shares = self._shares
        if shares.isolating and shares.boosted(call.tenant, worker):
            call.priority += self._boost
        if call.started_on:  # sent to a worker ahead of this grant (an early start)
            started_early(call, worker.worker_id, call.priority)
        worker.inflight += 1
        if worker.inflight >= worker.max_inflight:  # _track: it was free, it may be full now
            self._free.pop(worker.worker_id, None)
        shares.running(call.tenant, worker, +1)
        program.last_worker = worker.worker_id
        call.state = CallState.RUNNING
        call.worker_id, call.worker_address = worker.worker_id, worker.address
        call.dispatched_at = now
        self._events.append(call_changed(call))
        return grant_of(call)


def _worker_id(worker: WorkerState) -> str:
    return worker.worker_id
