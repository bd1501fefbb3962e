"""Calls waiting for their home worker: the engine that holds their program's context.

When a call's home (see `Affinity.home`) has no free admission budget, sending the call to
another engine costs a re-prefill of its whole context there, and under load every such
move lowers the cluster's prefix hit rate, which costs throughput, which deepens the load.
So the planner parks the call on its home instead: when the home frees a slot, its parked
calls go first, best score first. A call parked longer than `max_wait_s` is released to
the global queue and may then run anywhere (it is never parked again). A worker keeps its
parked calls per tenant, so that a tenant held back by its share (planner/core/tenants.py)
is skipped without looking at its calls, and counts them exactly (per worker and tenant).

Pure and synchronous; calls that stop waiting (cancelled, failed) are dropped lazily.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable

from planner.core.model import CallRecord, CallState
from planner.core.tenants import bump_count


class ParkedCalls:
    def __init__(self, max_wait_s: float) -> None:
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.max_wait_s = max_wait_s
        # worker -> tenant -> heap of (score, arrival, seq, call)
        self._by_worker: dict[str, dict[str, list[tuple[float, float, int, CallRecord]]]] = {}
        self._parked: dict[str, tuple[CallRecord, float, str]] = {}  # key -> (call, since, worker)
        self._order: deque[tuple[float, str]] = deque()  # (since, key), oldest first
        self._released: set[str] = set()  # keys that waited their turn and may go anywhere
        self._seq = itertools.count()
        self.total = 0  # calls parked so far
        self._on: dict[str, dict[str, int]] = {}  # worker -> tenant -> calls parked there
        self._of: dict[str, int] = {}  # tenant -> calls parked anywhere

    def size_of(self, tenant: str) -> int:
        """Calls of `tenant` parked anywhere."""
        return self._of.get(tenant, 0)

    def count_on(self, worker_id: str, tenant: str) -> int:
        """Calls of `tenant` parked on `worker_id` (waiting for it)."""
        return self._on.get(worker_id, {}).get(tenant, 0)

    def counts(self) -> dict[tuple[str, str], int]:
        """Parked calls per (worker, tenant)."""
        return {(w, t): n for w, on in self._on.items() for t, n in on.items() if n}

    def tenants(self) -> Iterable[str]:
        """Tenants with parked calls."""
        return self._of.keys()

    def holds(self, call: CallRecord) -> bool:
        return call.key in self._parked

    def _drop(self, key: str) -> tuple[CallRecord, float, str] | None:
        entry = self._parked.pop(key, None)
        if entry is not None:
            call, _, worker_id = entry
            bump_count(self._on[worker_id], call.tenant, -1)
            bump_count(self._of, call.tenant, -1)
        return entry

    def __len__(self) -> int:
        return len(self._parked)

    def may_park(self, call: CallRecord) -> bool:
        return self.max_wait_s > 0 and call.key not in self._released

    def waiting_on(self, worker_id: str) -> bool:
        """Whether calls may be parked on `worker_id` (some may have stopped waiting)."""
        return bool(self._by_worker.get(worker_id))

    def park(self, call: CallRecord, worker_id: str, now: float) -> None:
        tenant, key = call.tenant, call.key
        tenants = self._by_worker.get(worker_id)
        if tenants is None:
            tenants = self._by_worker[worker_id] = {}
        heap = tenants.get(tenant)
        if heap is None:
            heap = tenants[tenant] = []
        heapq.heappush(heap, (call.score, call.arrival, next(self._seq), call))
        call.parked_since = now
        self.total += 1
        self._parked[key] = (call, now, worker_id)
        on = self._on.get(worker_id)
        if on is None:
            on = self._on[worker_id] = {}
        on[tenant] = on.get(tenant, 0) + 1
        self._of[tenant] = self._of.get(tenant, 0) + 1
        self._order.append((now, key))

    def take(self, worker_id: str,
             allowed: Callable[[str], bool] | None = None) -> CallRecord | None:
        """The best call parked on `worker_id` that is still waiting, of a tenant `allowed`
        (default: any), or None."""
        tenants = self._by_worker.get(worker_id)
        if not tenants:
            return None
        best: list[tuple[float, float, int, CallRecord]] | None = None
        parked = self._parked
        for tenant, heap in list(tenants.items()):
            while heap:  # drops the heads that no longer wait here
                call = heap[0][3]
                entry = parked.get(call.key)
                if entry is not None and entry[2] == worker_id:
                    if call.state is CallState.QUEUED:
                        break
                    self._drop(call.key)  # ended meanwhile
                heapq.heappop(heap)  # released, or ended meanwhile
            if not heap:
                del tenants[tenant]
                continue
            if (best is None or heap[0] < best[0]) and (allowed is None or allowed(tenant)):
                best = heap
        if best is None:
            return None
        call = heapq.heappop(best)[3]
        self._drop(call.key)
        return call

    def release_expired(self, now: float) -> list[CallRecord]:
        """Calls parked `max_wait_s` or longer, no longer parked: for the global queue."""
        out = []
        while self._order and now - self._order[0][0] >= self.max_wait_s:
            since, key = self._order.popleft()
            entry = self._parked.get(key)
            if entry is not None and entry[1] == since:
                out += self._release(key)
        return out

    def release_worker(self, worker_id: str) -> list[CallRecord]:
        """Every call parked on a worker that left."""
        tenants = self._by_worker.pop(worker_id, {})
        out = []
        for *_, call in (e for heap in tenants.values() for e in heap):
            entry = self._parked.get(call.key)
            if entry is not None and entry[2] == worker_id:
                out += self._release(call.key)
        return out

    def _release(self, key: str) -> list[CallRecord]:
        entry = self._drop(key)
        assert entry is not None
        call = entry[0]
        if call.state is not CallState.QUEUED:
            return []
        self._released.add(key)
        return [call]

    def forget(self, call: CallRecord) -> None:
        """The call was dispatched or ended: nothing here refers to it any more."""
        self._released.discard(call.key)
        self._drop(call.key)
