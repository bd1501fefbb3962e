"""Calls waiting for their home worker: the engine that holds their program's context.

When a call's home (see `Affinity.home`) has no free admission budget, sending the call to
another engine costs a re-prefill of its whole context there, and under load every such
move lowers the cluster's prefix hit rate, which costs throughput, which deepens the load.
So the planner parks the call on its home instead: when the home frees a slot, its parked
calls go first, best score first. A call parked longer than `max_wait_s` is released to
the global queue and may then run anywhere (it is never parked again).

Pure and synchronous; calls that stop waiting (cancelled, failed) are dropped lazily.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from planner.core.model import CallRecord, CallState


class ParkedCalls:
    def __init__(self, max_wait_s: float) -> None:
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.max_wait_s = max_wait_s
        self._by_worker: dict[str, list[tuple[float, float, int, CallRecord]]] = {}
        self._parked: dict[str, tuple[CallRecord, float, str]] = {}  # key -> (call, since, worker)
        self._order: deque[tuple[float, str]] = deque()  # (since, key), oldest first
        self._released: set[str] = set()  # keys that waited their turn and may go anywhere
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._parked)

    def may_park(self, call: CallRecord) -> bool:
        return self.max_wait_s > 0 and call.key not in self._released

    def park(self, call: CallRecord, worker_id: str, now: float) -> None:
        heapq.heappush(self._by_worker.setdefault(worker_id, []),
                       (call.score, call.arrival, next(self._seq), call))
        self._parked[call.key] = (call, now, worker_id)
        self._order.append((now, call.key))

    def take(self, worker_id: str) -> CallRecord | None:
        """The best call parked on `worker_id` that is still waiting, or None."""
        heap = self._by_worker.get(worker_id)
        while heap:
            call = heapq.heappop(heap)[3]
            entry = self._parked.get(call.key)
            if entry is None or entry[2] != worker_id:
                continue  # released meanwhile
            del self._parked[call.key]
            if call.state is CallState.QUEUED:
                return call
        return None

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
        heap = self._by_worker.pop(worker_id, [])
        out = []
        for *_, call in heap:
            entry = self._parked.get(call.key)
            if entry is not None and entry[2] == worker_id:
                out += self._release(call.key)
        return out

    def _release(self, key: str) -> list[CallRecord]:
        call = self._parked.pop(key)[0]
        if call.state is not CallState.QUEUED:
            return []
        self._released.add(key)
        return [call]

    def forget(self, call: CallRecord) -> None:
        """The call was dispatched or ended: nothing here refers to it any more."""
        self._released.discard(call.key)
        self._parked.pop(call.key, None)
