"""A queue entry is its call's record (planner/core/queue.py): no tuple per push. An entry
left behind in a lane (a parked call released to the global lane) reads the start and the
bound it was pushed with, as the planner's pushes keep both; the lane it left drops it
lazily and pops what it would have."""

from __future__ import annotations

from planner.core.model import CallRecord
from planner.core.parking import ParkedCalls
from planner.core.queue import GLOBAL, MultiLevelQueue


def _call(cid: str, score: float, arrival: float) -> CallRecord:
    return CallRecord("p", cid, "t", "main", (), 10, 4, arrival, score=score)


def test_a_released_call_keeps_its_place_and_its_bound_and_leaves_its_lane() -> None:
    queue = MultiLevelQueue((1.0, 4.0))
    parked = ParkedCalls(2.0, queue)
    a, b = _call("a", 0.5, 0.0), _call("b", 0.5, 0.5)
    parked.park(a, "w0", now=1.0, since=1.0)
    parked.park(b, "w0", now=1.5, since=1.5)
    start, until = a.queued_at, a.until
    assert (start, until) == (1.0, 1.0 + queue.bound_s(0.5))
    [released] = parked.release_expired(3.0)  # to the global lane
    assert released is a and a.lane == GLOBAL and (a.queued_at, a.until) == (start, until)
    assert queue.size_of("t", "w0") == 1 and queue.size_of("t", GLOBAL) == 1
    assert queue.pop(3.0, lanes=("w0",)) is b  # a's entry there: dropped, not popped
    assert queue.pop(3.0, lanes=("w0",)) is None
    assert queue.pop(3.0, lanes=(GLOBAL, "w0")) is a and len(queue) == 0
