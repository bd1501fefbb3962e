"""The planner's global queue: weighted fair share across tenants, then multi-level queues.

- Tenants: the next call comes from the active tenant with the least virtual time
  (planner/core/fair_share.py), so a flooding tenant cannot starve another.
- Levels (Autellix's multi-level queues): a call's policy score (e.g. its program's
  attained service) picks a level by thresholds; lower levels go first; FIFO within a
  level.
- Anti-starvation, in seconds for every policy: a call may wait in the queue
  `StarvationBound.wait_s(policy.score_seconds(score))` =
  clamp(ratio x expected service in seconds, min_s, max_s) before its level no longer
  matters. Scores come in the policy's own unit (PLAS/ATLAS: seconds of attained service;
  SRPT/clairvoyant: work units, i.e. tokens, x SECONDS_PER_WORK; slack: seconds of slack, and
  LATE for programs without a deadline); `score_seconds` converts them, and `max_s` keeps
  the bound finite whatever the score (a LATE call, a program expected to run for hours).
  With the defaults (4, 1 s, 60 s) a new PLAS program's call may be passed over for 1 s, a
  call of a program that attained 2 s for 8 s, and no call for more than a minute. Of a
  tenant's calls past their bound, wherever they stand in their levels, the one whose
  bound passed first goes first (earliest deadline, to the microsecond; ties: the first
  pushed); the wait
  counts from when the call entered the queue (not from a submission that had to wait for
  its parents).
- Lanes: the queue holds one such structure per lane, sharing the tenants' virtual times:
  the global lane (""), calls any worker may run, and one lane per worker, the calls parked
  on it as their home (planner/core/parking.py files them there when they are queued). A
  pop looks at the lanes it is given (a worker with a free slot: the global one and its
  own) and takes, of the tenant first in fair share, the call the rules above put first
  across those lanes (a starving call before the others, the earliest bound first; then
  the lowest level; then the earliest). So the calls waiting for a full worker are never
  looked at.
Per decision the cost is O(active tenants x lanes looked at + levels), independent of the
queue's length while no call starves; a starving call costs O(log n) more (its heap), and
its place in its level (it is taken from there by a scan, usually near the front).

Here, the pick (`pop`); the rest, one concept a module, are MultiLevelQueue's bases: what
the queue holds and its counts (planner/core/queue_state.py), filing calls by lane, level
and bound (planner/core/queue_push.py), the tenants' fair-share order
(planner/core/tenant_order.py) and the starving calls (planner/core/starving_calls.py).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence

from planner.core.lanes import GLOBAL, NO_LANE, SEQ_MASK, Entry, TenantLane, due_key
from planner.core.model import CallRecord, CallState
from planner.core.queue_push import QueuePush
from planner.core.starving_calls import StarvingCalls
from planner.core.tenant_order import TenantOrder

__all__ = ["GLOBAL", "MultiLevelQueue"]

_QUEUED = CallState.QUEUED


class MultiLevelQueue(QueuePush, TenantOrder, StarvingCalls):
    """The planner's global queue (module doc): its pushes, counts and views from its
    bases, its pick here."""

    def pop(self, now: float, tenant: str | None = None,
            lanes: Sequence[str] = (GLOBAL,)) -> CallRecord | None:
        """The next call of `lanes`: fair-share tenant first (or `tenant`'s), then starving
        heads, then lowest level; across lanes as within one (module doc). The call's
        `lane` still names the lane it came from."""
        if tenant is not None:
            return self.pop_tenant(tenant, now, lanes)
        for t in self.peek_tenants(lanes):
            call = self.pop_tenant(t, now, lanes)
            if call is not None:
                return call
        return None

    def pop_tenant(self, tenant: str, now: float, lanes: Sequence[str]) -> CallRecord | None:
        """`pop(now, tenant, lanes)`: the tenant's next call across `lanes`. Of each lane,
        before its `check_at` (no call starves) the first level whose head still waits there
        (stale heads dropped on the way); else `_starving_first`: the call whose bound passed
        first, if one did, or that first level. Of those, a starving call first, the
        earliest bound (ties: the first pushed); else the lowest level, then the oldest
        (ties: the first lane). A lane whose entries all left has its count reset (what was
        counted was stale). Inlined: the decision path."""
        best: deque[Entry] | None = None
        best_q = None
        best_i, best_since = 0, 0.0
        starving: CallRecord | None = None
        starving_q = None
        all_lanes = self._lanes
        for lane in lanes:
            q = all_lanes.get(lane, NO_LANE).get(tenant)
            if q is None or not q.size:
                continue
            picked: tuple[int, deque[Entry]] | None = None
            if now <= q.check_at:
                levels = q.levels
                for i in range(q.low, len(levels)):
                    level = levels[i]
                    while level:
                        call = level[0]
                        if call.in_queue and call.state is _QUEUED and call.lane == lane:
                            break
                        level.popleft()
                        if call.in_queue and call.lane == lane:  # its state moved on
                            self._uncount(q, call)  # without a discard: uncount it
                    else:
                        continue
                    q.low = i
                    picked = i, level
                    break
                else:
                    q.low = len(levels)
            else:
                overdue = self._starving_first(q, now)
                if overdue is not None:
                    if starving is None or due_key(overdue.until, overdue.due_seq) < due_key(
                            starving.until, starving.due_seq):
                        starving, starving_q = overdue, q
                    continue
                if q.size:
                    picked = self._first_level(q)
            if picked is None:
                if q.size:
                    self._size[tenant] -= q.size
                    self._len -= q.size
                    q.size = 0
                continue
            if starving is not None:
                continue
            i, level = picked
            since = level[0].queued_at
            if best is None or i < best_i or (i == best_i and since < best_since):
                best, best_q, best_i, best_since = level, q, i, since
        if starving is not None and starving_q is not None:
            return self._take_starving(starving_q, starving)
        if best is None or best_q is None:
            return None
        call = best.popleft()
        if call.in_queue:  # live (stale heads were dropped): uncounted, inlined
            call.in_queue = False
            best_q.size -= 1
            self._size[tenant] -= 1
            self._len -= 1
        due = best_q.due
        if due and due[0] & SEQ_MASK == call.due_seq:  # its starvation entry, on top (calls
            del best_q.due_calls[heapq.heappop(due) & SEQ_MASK]  # of one bound leave in order)
        return call

    def _first_level(self, q: TenantLane) -> tuple[int, deque[Entry]] | None:
        """The lowest level whose head still waits in the lane, stale heads dropped."""
        levels, lane = q.levels, q.lane
        for i in range(q.low, len(levels)):
            level = levels[i]
            while level:
                head = level[0]
                if head.in_queue and head.lane == lane and head.state is _QUEUED:
                    q.low = i
                    return i, level
                level.popleft()
                if head.in_queue and head.lane == lane:  # its state moved on without a
                    self._uncount(q, head)  # discard
        q.low = len(levels)
        return None
