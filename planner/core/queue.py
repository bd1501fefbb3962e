"""The planner's global queue: weighted fair share across tenants, then multi-level queues.

- Tenants: each has a virtual time (attained service / weight); the next call comes from
  the active tenant with the least virtual time, so a flooding tenant cannot starve
  another. A tenant that becomes active starts at the least active virtual time, so idle
  periods are not banked as credit.
- Levels (Autellix's multi-level queues): a call's policy score (e.g. its program's
  attained service) picks a level by thresholds; lower levels go first; FIFO within a
  level.
- Anti-starvation: a level's oldest call whose wait exceeds `starvation_ratio` times its
  score (or one quantum, at least) is served first.
Per decision the cost is O(active tenants + levels), independent of the queue's length.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping, Sequence

from planner.core.model import CallRecord, CallState


class _TenantQueue:
    __slots__ = ("levels", "size")

    def __init__(self, n_levels: int) -> None:
        self.levels: list[deque[CallRecord]] = [deque() for _ in range(n_levels)]
        self.size = 0


class MultiLevelQueue:
    def __init__(self, thresholds: Sequence[float], *, starvation_ratio: float = 4.0,
                 tenant_weights: Mapping[str, float] | None = None) -> None:
        if list(thresholds) != sorted(thresholds):
            raise ValueError("level thresholds must be increasing")
        self._thresholds = list(thresholds)
        self._quantum = thresholds[0] if thresholds else 1.0
        self._ratio = starvation_ratio
        self._weights = dict(tenant_weights or {})
        self._tenants: dict[str, _TenantQueue] = {}
        self._vtime: dict[str, float] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def weight(self, tenant: str) -> float:
        w = self._weights.get(tenant, 1.0)
        if w <= 0:
            raise ValueError(f"tenant weight must be positive: {tenant}")
        return w

    def level_of(self, score: float) -> int:
        return bisect.bisect_right(self._thresholds, score)

    def push(self, call: CallRecord) -> None:
        q = self._tenants.get(call.tenant)
        if q is None or q.size == 0:
            active = [self._vtime[t] for t, tq in self._tenants.items() if tq.size]
            floor = min(active) if active else 0.0
            self._vtime[call.tenant] = max(self._vtime.get(call.tenant, 0.0), floor)
            if q is None:
                q = self._tenants[call.tenant] = _TenantQueue(len(self._thresholds) + 1)
        q.levels[self.level_of(call.score)].append(call)
        q.size += 1
        self._len += 1

    def account(self, tenant: str, service_s: float) -> None:
        """Charges completed service to a tenant's virtual time."""
        self._vtime[tenant] = self._vtime.get(tenant, 0.0) + service_s / self.weight(tenant)

    def _prune(self, q: _TenantQueue) -> None:
        for level in q.levels:
            while level and level[0].state is not CallState.QUEUED:  # cancelled: lazy deletion
                level.popleft()
                q.size -= 1
                self._len -= 1

    def peek_tenants(self) -> list[str]:
        """Active tenants, fair-share order."""
        for q in self._tenants.values():
            self._prune(q)
        active = [t for t, q in self._tenants.items() if q.size]
        return sorted(active, key=lambda t: (self._vtime.get(t, 0.0), t))

    def pop(self, now: float, tenant: str | None = None) -> CallRecord | None:
        """The next call: fair-share tenant first, then starving heads, then lowest level."""
        order = [tenant] if tenant is not None else self.peek_tenants()
        for t in order:
            q = self._tenants.get(t)
            if q is None:
                continue
            self._prune(q)
            if not q.size:
                continue
            heads = [level[0] for level in q.levels if level]
            starving = [c for c in heads
                        if now - c.arrival > self._ratio * max(c.score, self._quantum)]
            pick = min(starving, key=lambda c: c.arrival) if starving else heads[0]
            q.levels[self.level_of(pick.score)].popleft()  # pick is always a level's head
            q.size -= 1
            self._len -= 1
            return pick
        return None
