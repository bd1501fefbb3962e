"""Scores that age while their calls wait: `slack`'s (pure, clock-free: times are passed in).

Every other policy scores a call by what does not change while it waits (its program's
attained service, expected work). Slack is "deadline - now - work": a call's score falls
one second per second waited. The queue files a call at the level its score picks when it
is pushed (planner/core/queue_push.py), so without aging a call queued long ago kept the
slack it had then, and one queued later with more real slack went first (planner review
2026-12-06 F3: A, deadline 40 s, queued at 0 with 39.8 s; B, deadline 50 s, queued at 30
with 19.8 s: B went first, though A's slack was 9.8 s by then).

`LevelCrossings` keeps, for each waiting call scored by such a policy, when its score will
have fallen below the lower bound of its level: then the planner scores it again and moves
it to the level it has reached (or demotes or refuses it, late). A call is moved at most
once per level it passes, so the cost is O(levels) per call, not one step per second.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence

from planner.core.model import CallRecord, CallState
from planner.core.policies import LATE


class LevelCrossings:
    """Waiting calls by when their aging score leaves their level (a min-heap)."""

    def __init__(self, thresholds: Sequence[float]) -> None:
        self._thresholds = list(thresholds)
        self._heap: list[tuple[float, int, CallRecord]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def watch(self, call: CallRecord, now: float, live: int) -> None:
        """Notes when the call's score (set as of `now`) falls below its level's lower bound;
        nothing for a call in the lowest level, whose score has nowhere lower to go, or
        scored LATE (no deadline, or late: it does not age). `live`: calls the planner has
        waiting, to drop the entries of calls gone once they are most."""
        thresholds = self._thresholds
        level = bisect.bisect_right(thresholds, call.score)
        if level == 0 or call.score >= LATE:
            return
        self._seq += 1
        heapq.heappush(self._heap, (now + call.score - thresholds[level - 1], self._seq, call))
        if len(self._heap) > 2 * live + 64:
            self._heap = [e for e in self._heap if e[2].state is CallState.QUEUED]
            heapq.heapify(self._heap)

    def next_at(self) -> float:
        return self._heap[0][0] if self._heap else float("inf")

    def due(self, now: float) -> list[CallRecord]:
        """The calls still waiting whose scores have left their levels by `now`."""
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            call = heapq.heappop(heap)[2]
            if call.state is CallState.QUEUED:
                out.append(call)
        return out
