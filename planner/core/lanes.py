"""A lane of the planner's queue (planner/core/queue.py), per tenant: its calls by level.

The queue holds one such structure per (lane, tenant): the global lane (GLOBAL), calls any
worker may run, and one lane per worker, the calls parked on it as their home
(planner/core/parking.py). Levels are deques of entries, oldest first; beside them, a
min-heap of the same calls by when they may no longer be passed over (`until`), which finds
a starving call wherever it is in its level (planner review 2026-12-05 F7: looking at level
heads only, a call behind a head with a longer bound waited up to 4x its own). An entry that
no longer waits here (popped, discarded, moved to another lane, pushed again with another
bound) is dropped lazily.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from planner.core.model import CallRecord, CallState

GLOBAL = ""  # the lane of calls any worker may run

# A queued call's entry is its record: it entered the queue at `queued_at` and may be passed
# over until `until` (both set as it is pushed). No tuple per entry: each one was a tracked
# allocation, alive while the call waits, that every young collection walked. A call has at
# most one entry per lane, and its pushes keep its start and score, so an entry left behind
# in another lane (dropped lazily) reads the same values as when it was pushed.
Entry = CallRecord
# The starvation heap's entries: one int per push, `until` in microseconds above the push's
# number (SEQ_BITS bits): ordered by bound, then push order. An int is no object the
# collector tracks, where a tuple per push would be one more allocation for every young
# collection to count and walk (and a tuple holding the record, walked while its call
# waits); the push number finds the call in `due_calls`.
Due = int
SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1


class TenantLane:
    """A tenant's calls in one lane, by level, and what the queue keeps of them: how many
    it counts (`size`), the lowest level that may hold one (`low`) and a bound over the
    calls' `until` (`check_at`), and the calls by `until` (`due`, a min-heap, and
    `due_calls`, each entry's call by its push order)."""

    __slots__ = ("check_at", "due", "due_calls", "lane", "levels", "low", "size", "tenant")

    def __init__(self, n_levels: int, tenant: str, lane: str) -> None:
        self.levels: list[deque[Entry]] = [deque() for _ in range(n_levels)]
        self.due: list[Due] = []
        self.due_calls: dict[int, CallRecord] = {}
        self.tenant, self.lane = tenant, lane
        self.size = 0
        self.low = n_levels  # every level below this one is empty
        # At most the earliest time a call here may be passed over until: before it none
        # starves, and `pop` takes the first level without looking at `due`.
        self.check_at = float("inf")

    def clear(self) -> None:
        """Drops every entry (none waits here: `size` is 0)."""
        for level in self.levels:
            level.clear()
        self.due.clear()
        self.due_calls.clear()
        self.low = len(self.levels)
        self.check_at = float("inf")


NO_LANE: dict[str, TenantLane] = {}  # a lane with no calls yet (never written)


def waits_in(q: TenantLane, call: CallRecord) -> bool:
    """Whether the call waits in this tenant's lane (else its entries there are stale)."""
    return call.in_queue and call.lane == q.lane and call.state is CallState.QUEUED


def due_key(until: float, seq: int) -> Due:
    """A starvation-heap entry: bound to the microsecond, then push order."""
    return (int(until * 1e6) << SEQ_BITS) | seq


def due_call(q: TenantLane, entry: Due) -> CallRecord | None:
    """The call of a starvation-heap entry, if the entry is its latest push and the call
    is counted in this lane (else the entry is stale)."""
    seq = entry & SEQ_MASK
    call = q.due_calls[seq]
    return call if call.in_queue and call.lane == q.lane and call.due_seq == seq else None


def add_due(q: TenantLane, until: float, seq: int, call: CallRecord) -> None:
    """The call, queued in `q` until `until`, on its starvation heap (its push number
    `seq`); the heap is rebuilt from its live entries once stale ones are most of it
    (entries of calls popped from their level go only when they reach its top: the records
    they hold must not stay for long)."""
    call.due_seq = seq
    if until == math.inf:  # never passed over for good: anti-starvation off
        return
    due = q.due
    heapq.heappush(due, due_key(until, seq))
    q.due_calls[seq] = call
    if len(due) > 2 * q.size + 64:
        due[:] = [e for e in due if due_call(q, e) is not None]
        heapq.heapify(due)
        q.due_calls = {e & SEQ_MASK: q.due_calls[e & SEQ_MASK] for e in due}


def remove_entry(level: deque[Entry], call: CallRecord) -> bool:
    """Takes the call's first entry out of the level (records compare by identity);
    whether it was there. A starving call is served from the middle of its level this way:
    O(its place in the level), in C."""
    try:
        level.remove(call)
    except ValueError:
        return False
    return True
