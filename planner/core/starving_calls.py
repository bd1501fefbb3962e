"""Anti-starvation in the planner's queue (planner/core/queue.py): the starving calls.

A queued call may be passed over until its bound (`until`: planner/core/starvation.py's
bound, set as it is pushed, planner/core/queue_push.py); past it, its level no longer
matters. A tenant lane's calls by bound are its starvation heap (planner/core/lanes.py), so
the call whose bound passed first is found wherever it stands in its level (earliest bound
to the microsecond; ties: the first pushed), and taken from there by a scan, usually near
the front: O(log n) for the heap, and its place in its level.
"""

from __future__ import annotations

import bisect
import heapq

from planner.core.lanes import SEQ_MASK, TenantLane, due_call, remove_entry
from planner.core.model import CallRecord, CallState
from planner.core.queue_state import QueueState

_QUEUED = CallState.QUEUED


class StarvingCalls(QueueState):
    """A lane's starving call, found and taken (module doc)."""

    def _starving_first(self, q: TenantLane, now: float) -> CallRecord | None:
        """The lane's call whose bound passed first, if one did (left on top of `due`);
        stale entries on top are dropped on the way (a call whose state moved on without a
        discard is uncounted), and `check_at` becomes exact again (the earliest bound)."""
        due, due_calls = q.due, q.due_calls
        while due:
            call = due_call(q, due[0])
            if call is not None:
                if call.state is _QUEUED:
                    break
                self._uncount(q, call)  # its state moved on without a discard
            del due_calls[heapq.heappop(due) & SEQ_MASK]
        if not due or call is None:
            q.check_at = float("inf")
            return None
        q.check_at = call.until  # exact (the heap orders bounds to the microsecond)
        return call if now > q.check_at else None

    def _take_starving(self, q: TenantLane, call: CallRecord) -> CallRecord:
        """Pops the starving call on top of the lane's `due`, and its entry from its level."""
        del q.due_calls[heapq.heappop(q.due) & SEQ_MASK]
        level = q.levels[bisect.bisect_right(self._thresholds, call.score)]
        if not remove_entry(level, call):  # (pushed at another score since: any level)
            for other in q.levels:
                if remove_entry(other, call):
                    break
        self._uncount(q, call)
        return call
