"""A lane of the planner's queue (planner/core/queue.py), per tenant: its calls by level.

The queue holds one such structure per (lane, tenant): the global lane (GLOBAL), calls any
worker may run, and one lane per worker, the calls parked on it as their home
(planner/core/parking.py). Levels are deques of entries, oldest first; an entry that no
longer waits here (popped, discarded, moved to another lane) is dropped lazily.
"""

from __future__ import annotations

from collections import deque

from planner.core.model import CallRecord, CallState

GLOBAL = ""  # the lane of calls any worker may run

# A queued call's entry is its record: it entered the queue at `queued_at` and may be passed
# over until `until` (both set as it is pushed). No tuple per entry: each one was a tracked
# allocation, alive while the call waits, that every young collection walked. A call has at
# most one entry per lane, and its pushes keep its start and score, so an entry left behind
# in another lane (dropped lazily) reads the same values as when it was pushed.
Entry = CallRecord


class TenantLane:
    """A tenant's calls in one lane, by level, and what the queue keeps of them: how many
    it counts (`size`), the lowest level that may hold one (`low`) and a bound over the
    level heads' `until` (`check_at`)."""

    __slots__ = ("check_at", "lane", "levels", "low", "size", "tenant")

    def __init__(self, n_levels: int, tenant: str, lane: str) -> None:
        self.levels: list[deque[Entry]] = [deque() for _ in range(n_levels)]
        self.tenant, self.lane = tenant, lane
        self.size = 0
        self.low = n_levels  # every level below this one is empty
        # At most the earliest time a level head may be passed over until: before it no head
        # starves, and `pop` takes the first level without looking at the others' heads.
        self.check_at = float("inf")

    def clear(self) -> None:
        """Drops every entry (none waits here: `size` is 0)."""
        for level in self.levels:
            level.clear()
        self.low = len(self.levels)
        self.check_at = float("inf")


NO_LANE: dict[str, TenantLane] = {}  # a lane with no calls yet (never written)


def waits_in(q: TenantLane, call: CallRecord) -> bool:
    """Whether the call waits in this tenant's lane (else its entries there are stale)."""
    return call.in_queue and call.lane == q.lane and call.state is CallState.QUEUED
