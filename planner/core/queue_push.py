"""Filing calls into the planner's queue (planner/core/queue.py): lane, level and bound.

A call pushed into a lane goes to its tenant's TenantLane there (planner/core/lanes.py): to
the level its score picks by the policy's thresholds (lower levels go first; FIFO within a
level) and onto the lane's starvation heap, by when it may no longer be passed over: its
start plus `StarvationBound.wait_s(score_seconds(score))` (planner/core/starvation.py),
its `until`. It is counted once (planner/core/queue_state.py), however often it is pushed.
Parked calls released from their homes' lanes go to the global lane with the start and
bound they were pushed with (`requeue`, `to_global`: the decision path's tail).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from planner.core.lanes import GLOBAL, TenantLane, add_due, remove_entry
from planner.core.model import CallRecord
from planner.core.queue_state import QueueState


class QueuePush(QueueState):
    """The queue's pushes (module doc)."""

    def level_of(self, score: float) -> int:
        return bisect.bisect_right(self._thresholds, score)

    def bound_s(self, score: float) -> float:
        """Seconds a call of this score may wait before it is served ahead of its level."""
        return self.starvation.wait_s(self._score_seconds(score))

    def push(self, call: CallRecord, since: float | None = None, lane: str = GLOBAL) -> None:
        """Queues a call in `lane`; its wait counts from `since` (default: its arrival). A
        call counted in another lane moves (its entry there is dropped lazily)."""
        tenant = call.tenant
        if call.in_queue and call.lane != lane:
            self.discard(call)
        if not self._size.get(tenant):
            self._activate(tenant)
        tenants = self._lanes.get(lane)
        if tenants is None:
            tenants = self._lanes[lane] = {}
        q = tenants.get(tenant)
        if q is None:
            q = tenants[tenant] = TenantLane(len(self._thresholds) + 1, tenant, lane)
        start = call.arrival if since is None else since
        score = call.score
        bound = self.starvation  # bound_s's, inlined: every call comes through here
        until = start + min(bound.max_s, max(bound.min_s, bound.ratio * self._score_seconds(score)))
        i = bisect.bisect_right(self._thresholds, score)
        if until < q.check_at:
            q.check_at = until
        if i < q.low:
            q.low = i
        call.queued_at, call.until = start, until
        q.levels[i].append(call)
        if not call.in_queue:  # counted once, however often it is pushed
            call.in_queue = True
            call.lane = lane
            q.size += 1
            self._size[tenant] = self._size.get(tenant, 0) + 1
            self._len += 1
        self._seq += 1
        add_due(q, until, self._seq, call)

    def relevel(self, call: CallRecord, score: float) -> None:
        """A waiting call scored again (its score aged: planner/core/aging.py) moves to the
        end of the level `score` picks; its start and bound stay as they were pushed."""
        thresholds = self._thresholds
        old = bisect.bisect_right(thresholds, call.score)
        new = bisect.bisect_right(thresholds, score)
        call.score = score
        if old == new or not call.in_queue:
            return
        q = self._lanes[call.lane][call.tenant]
        if remove_entry(q.levels[old], call):
            q.levels[new].append(call)
            if new < q.low:
                q.low = new

    def requeue(self, call: CallRecord) -> None:
        """`push(call, since=call.queued_at)` into the global lane for a call no lane counts
        (a parked call released: discarded from its home's lane), on the decision path:
        its start and score are those it was pushed with, so its bound (`until`) is too,
        and is kept rather than computed again."""
        if call.in_queue:
            self.push(call, since=call.queued_at)
            return
        tenant, size = call.tenant, self._size
        if not size.get(tenant):
            self._activate(tenant)
        q = self._global.get(tenant)
        if q is None:
            q = self._global[tenant] = TenantLane(len(self._thresholds) + 1, tenant, GLOBAL)
        until = call.until
        i = bisect.bisect_right(self._thresholds, call.score)
        if until < q.check_at:
            q.check_at = until
        if i < q.low:
            q.low = i
        q.levels[i].append(call)
        call.in_queue = True
        call.lane = GLOBAL
        q.size += 1
        size[tenant] = size.get(tenant, 0) + 1
        self._len += 1
        self._seq += 1
        add_due(q, until, self._seq, call)

    def to_global(self, calls: Sequence[CallRecord]) -> None:
        """`discard` of each call, then `requeue` of each: parked calls released leave their
        homes' lanes for the global one (the decision path's tail). In one pass when every
        one is counted in its lane and no tenant counts as few calls as are moved (none
        reaches 0 on the way, so none is activated, and the counts end as they were)."""
        size, n = self._size, len(calls)
        for call in calls:
            if not call.in_queue or size[call.tenant] <= n:
                for each in calls:
                    self.discard(each)
                for each in calls:
                    self.requeue(each)
                return
        all_lanes, all_global, thresholds = self._lanes, self._global, self._thresholds
        for call in calls:
            tenant = call.tenant
            home = all_lanes[call.lane][tenant]
            home.size -= 1
            if not home.size:
                home.clear()
            q = all_global.get(tenant)
            if q is None:
                q = all_global[tenant] = TenantLane(len(thresholds) + 1, tenant, GLOBAL)
            until = call.until  # as `requeue`
            i = bisect.bisect_right(thresholds, call.score)
            if until < q.check_at:
                q.check_at = until
            if i < q.low:
                q.low = i
            q.levels[i].append(call)
            call.lane = GLOBAL
            q.size += 1
            self._seq += 1
            add_due(q, until, self._seq, call)
