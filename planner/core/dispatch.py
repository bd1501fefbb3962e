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
from planner.core.model import CallChanged, CallRecord, CallState, Event, Grant, Program, WorkerState
from planner.core.parking import ParkedCalls
from planner.core.policies import PriorityPolicy, engine_priority
from planner.core.queue import MultiLevelQueue
from planner.core.reconcile import CallAttempt, UnstartedGrants
from planner.core.routing import RoutingPolicy
from planner.core.tenants import TenantShares


def grant_of(call: CallRecord) -> Grant:
    """The grant of a running call (also re-sent when a restarted planner is asked again)."""
    queued = (call.dispatched_at or call.arrival) - call.arrival
    matched = call.kv_matches.get(call.worker_id, 0) if call.kv_matches else 0
    return Grant(call.program_id, call.call_id, call.worker_id, call.worker_address,
                 call.priority, queued_s=queued, matched_blocks=matched, parked_s=call.parked_s,
                 attempt=call.attempt)


def _unpark(call: CallRecord, now: float) -> None:
    if call.parked_since is not None:
        call.parked_s += now - call.parked_since
        call.parked_since = None


class WorkerDispatch:
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
    _finish: Callable[[CallRecord, CallState], None]  # PlannerCore's: ends a call

    # ---- workers -------------------------------------------------------------------

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
            self._by_id = None
            self._unstarted.seen(worker_id, now)
            resize = True
        else:
            resize = worker.healthy != healthy or worker.kv_tokens != kv_tokens
            worker.address, worker.max_inflight = address, max_inflight
            worker.kv_tokens = kv_tokens
            worker.last_seen, worker.simulated = now, simulated
        if worker.healthy and not healthy:
            for call in self._parked.release_worker(worker_id):
                self._queue.push(call)
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
        else kv_tokens_per_worker (planner/core/admission.py); 0: unknown, no limit."""
        pools = sum(w.kv_tokens or self._kv_per_worker for w in self._workers.values() if w.healthy)
        self._admission.capacity = int(pools * self._kv_fraction)

    def _track(self, worker: WorkerState) -> None:
        """Keeps the index of workers with a free slot (call after inflight changes)."""
        if worker.free > 0 and worker.healthy and self._workers.get(worker.worker_id) is worker:
            self._free[worker.worker_id] = worker
        else:
            self._free.pop(worker.worker_id, None)

    def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)
        self._free.pop(worker_id, None)
        self._unstarted.forget(worker_id)
        self._by_id = None
        for call in self._parked.release_worker(worker_id):
            self._queue.push(call)
        self._resize_admission()

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

    # ---- dispatch ------------------------------------------------------------------

    def dispatch(self) -> list[Grant]:
        """Starts queued calls while workers have budget; returns the grants made.

        Programs waiting for admission (planner/core/admission.py) that now fit start first,
        their calls joining the queue. A call whose home worker (the routing policy's
        `home`) is full waits for it, up to `max_home_wait_s` (planner/core/parking.py); a
        worker's parked calls go first."""
        grants: list[Grant] = []
        now = self._clock.now()
        for call in self._parked.release_expired(now):
            _unpark(call, now)
            self._queue.push(call)
        if not self._free:
            return grants
        if len(self._admission):  # programs whose working sets now fit start
            for call in self._admission.release():
                self._queue.push(call, since=now)
        shares = self._shares
        shares.refresh({*self._queue.tenants(), *self._parked.tenants(),
                        *shares.running_tenants(), *shares.between_calls(now, self._open_of)})
        parked = self._parked
        if len(parked):
            for worker in self._free_workers():
                if not parked.waiting_on(worker.worker_id):
                    continue  # nothing parked there: no gate to compute
                while worker.free > 0 and (call := parked.take(
                        worker.worker_id, shares.gate(worker) if shares.isolating else None)) \
                        is not None:
                    grants.append(self._start(call, worker, now))
        queue, routing = self._queue, self._routing
        free = self._free_workers()
        if not free or not len(queue):
            return grants
        order = queue.peek_tenants()  # fair share; no tenant's virtual time moves in here
        while free and len(queue):
            gates = [shares.gate(w) for w in free]
            tenant = next((t for t in order if queue.size_of(t)
                           and any(gate(t) for gate in gates)), None)
            if tenant is None:  # the first tenant that its share lets onto a free worker
                break
            call = self._next_startable(tenant, now)
            if call is None:
                continue  # the tenant's queue ran dry: others may be let on now
            program = self._programs[call.program_id]
            candidates = [w for w, gate in zip(free, gates, strict=True) if gate(tenant)] \
                if shares.isolating else free
            if call.excluded:
                others = [w for w in candidates if w.worker_id not in call.excluded]
                if not others and (elsewhere := self._elsewhere(call)) is not None \
                        and parked.may_park(call):
                    parked.park(call, elsewhere.worker_id, now)  # wait for a worker that
                    continue  # has not failed it, while one is registered and healthy
                candidates = others or candidates
            worker = routing.choose(call, program, candidates, self._sorted_workers())
            grants.append(self._start(call, worker, now))
            free = self._free_workers()
        return grants

    def _next_startable(self, tenant: str, now: float) -> CallRecord | None:
        """The tenant's next queued call that need not wait for its home worker; each call
        popped on the way, whose home is full, is parked there (planner/core/parking.py).
        None: the tenant's queue ran dry. Each call is parked at most once, so over time
        this costs O(1) per call; its names are bound once, as it is the decision path."""
        pop, programs, workers, home_of = self._queue.pop, self._programs, self._workers, \
            self._routing.home
        parked, shares = self._parked, self._shares
        may_park, park = parked.may_park, parked.park
        while (call := pop(now, tenant)) is not None:
            program = programs[call.program_id]
            if not may_park(call):
                return call
            home = workers.get(home_of(call, program))
            if home is None or not home.healthy or home.worker_id in call.excluded or (
                    home.inflight < home.max_inflight and shares.allows(tenant, home)):
                return call
            park(call, home.worker_id, now)  # its home is full: wait for it
        return None

    def _elsewhere(self, call: CallRecord) -> WorkerState | None:
        """The least loaded healthy worker that no earlier attempt of `call` failed on (a
        scan of the workers: only for retried calls, which are rare)."""
        others = [w for w in self._sorted_workers()
                  if w.healthy and w.worker_id not in call.excluded]
        return min(others, key=lambda w: w.inflight / w.max_inflight, default=None)

    def _start(self, call: CallRecord, worker: WorkerState, now: float) -> Grant:
        program = self._programs[call.program_id]
        self._parked.forget(call)
        _unpark(call, now)
        call.priority = engine_priority(self._priority, call.score)
        shares = self._shares
        if shares.isolating and shares.boosted(call.tenant, worker):
            call.priority += self._boost
        worker.inflight += 1
        self._track(worker)
        shares.running(call.tenant, worker, +1)
        program.last_worker = worker.worker_id
        call.state = CallState.RUNNING
        call.worker_id, call.worker_address = worker.worker_id, worker.address
        call.dispatched_at = now
        self._events.append(CallChanged(call))
        return grant_of(call)


def _worker_id(worker: WorkerState) -> str:
    return worker.worker_id
