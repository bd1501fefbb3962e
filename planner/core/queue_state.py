"""What the planner's queue (planner/core/queue.py) holds, and its bookkeeping.

Its settings (the level thresholds, the policy's `score_seconds`, the starvation bound and
fair share), its lanes (lane -> tenant -> TenantLane, planner/core/lanes.py) and its
counts: a call is counted once (`CallRecord.in_queue`) from its push until it is popped or
discarded, in its tenant's lane, in the tenant's count across every lane and in the
queue's length; a tenant with no call counted becomes active again at its next push. The
read-only views of those counts (per tenant, lane and level) live here too. Filing calls
(planner/core/queue_push.py), the fair-share order of tenants (planner/core/tenant_order.py),
the starving calls (planner/core/starving_calls.py) and the pick (planner/core/queue.py)
build on this state.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView, Mapping, Sequence

from planner.core.fair_share import FairShare
from planner.core.lanes import GLOBAL, TenantLane, waits_in
from planner.core.model import CallRecord
from planner.core.starvation import StarvationBound


def _seconds(score: float) -> float:
    return score


class QueueState:
    """The queue's settings, lanes and counts (module doc); MultiLevelQueue's base."""

    def __init__(self, thresholds: Sequence[float], *,
                 score_seconds: Callable[[float], float] = _seconds,
                 starvation: StarvationBound | None = None,
                 tenant_weights: Mapping[str, float] | None = None) -> None:
        if list(thresholds) != sorted(thresholds):
            raise ValueError("level thresholds must be increasing")
        self._thresholds = list(thresholds)
        self._score_seconds = score_seconds
        self.starvation = starvation or StarvationBound()
        self.fair_share = FairShare(tenant_weights)
        self._global: dict[str, TenantLane] = {}  # tenant -> its global lane
        self._lanes: dict[str, dict[str, TenantLane]] = {GLOBAL: self._global}  # lane -> ...
        self._size: dict[str, int] = {}  # tenant -> calls counted, every lane
        self._vtime = self.fair_share.vtime  # the decision path's, bound once
        self._vtime_of = self._vtime.__getitem__  # a sort key, bound once
        self._len = 0
        self._seq = 0  # pushes so far: the starvation heap's order among equal bounds

    def __len__(self) -> int:
        return self._len

    def _activate(self, tenant: str) -> None:
        """The tenant becomes active (it had no calls counted): fair share's `activate`."""
        self.fair_share.activate(tenant, (t for t, n in self._size.items() if n))

    def _uncount(self, q: TenantLane, call: CallRecord) -> None:
        call.in_queue = False
        q.size -= 1
        self._size[q.tenant] -= 1
        self._len -= 1

    def discard(self, call: CallRecord) -> None:
        """A queued call leaves without being popped (cancelled, or moved to another lane):
        it is no longer counted; its entry is dropped lazily."""
        if not call.in_queue:  # not counted here (popped or discarded already)
            return
        q = self._lanes[call.lane][call.tenant]
        call.in_queue = False  # uncounted (`_uncount`'s, inlined: every release comes here)
        q.size -= 1
        self._size[q.tenant] -= 1
        self._len -= 1
        if not q.size:  # every entry left is stale: drop them now, not at the tenant's
            q.clear()  # next pop (that may never come), so the records they hold go

    def drop_lane(self, lane: str) -> None:
        """A worker's lane, once the worker is gone and its calls moved out (kept while one
        is still counted there)."""
        tenants = self._lanes.get(lane)
        if lane != GLOBAL and tenants is not None and not any(q.size for q in tenants.values()):
            del self._lanes[lane]

    def size_of(self, tenant: str, lane: str | None = None) -> int:
        """The tenant's queued calls, in every lane (None) or in `lane`."""
        if lane is None:
            return self._size.get(tenant, 0)
        q = self._lanes.get(lane, {}).get(tenant)
        return q.size if q is not None else 0

    def global_size_of(self, tenant: str) -> int:
        """The tenant's calls in the global lane (those any worker may run)."""
        q = self._global.get(tenant)
        return q.size if q is not None else 0

    def depths(self, lane: str = GLOBAL) -> dict[tuple[str, int], int]:
        """A lane's queued calls per (tenant, level), for metrics: O(queue length), never
        called on the decision path."""
        out: dict[tuple[str, int], int] = {}
        for tenant, q in self._lanes.get(lane, {}).items():
            for i, level in enumerate(q.levels):
                n = sum(1 for entry in level if waits_in(q, entry))
                if n:
                    out[(tenant, i)] = n
        return out

    def active_tenants(self) -> set[str]:
        """Tenants with queued calls (in any lane), as a new set."""
        return {t for t, n in self._size.items() if n}

    def counted_tenants(self) -> KeysView[str]:
        """Every tenant the queue has counted calls of (those with calls queued, and more)."""
        return self._size.keys()
