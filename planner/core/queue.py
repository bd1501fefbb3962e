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
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Container, KeysView, Mapping, Sequence

from planner.core.fair_share import FairShare
from planner.core.lanes import (
    GLOBAL,
    NO_LANE,
    SEQ_MASK,
    Entry,
    TenantLane,
    add_due,
    due_call,
    due_key,
    remove_entry,
    waits_in,
)
from planner.core.model import CallRecord, CallState
from planner.core.starvation import StarvationBound


def _seconds(score: float) -> float:
    return score


_QUEUED = CallState.QUEUED


class MultiLevelQueue:
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

    def peek_tenants(self, lanes: Sequence[str] = (GLOBAL,)) -> list[str]:
        """Tenants with calls in `lanes`, fair-share order."""
        all_lanes = self._lanes
        active: list[str] = []
        for lane in lanes:
            tenants = all_lanes.get(lane)
            if tenants:
                for t, q in tenants.items():
                    if q.size and t not in active:
                        active.append(t)
        if len(active) > 1:
            active.sort()  # ties: by name
            active.sort(key=self._vtime_of)  # every active tenant has a virtual time
        return active

    def first_tenant(self, lanes: Sequence[str] = (GLOBAL,),
                     among: Container[str] | None = None) -> str | None:
        """The first of `peek_tenants(lanes)` that is `among` them (None: any), or None,
        without sorting them all: the decision path's."""
        all_lanes, vtime = self._lanes, self._vtime
        best: str | None = None
        best_v = 0.0
        if among is not None and isinstance(among, (set, frozenset)):  # the admitted ones
            for t in among:  # (often fewer than the tenants): those with calls in `lanes`
                for lane in lanes:
                    q = all_lanes.get(lane, NO_LANE).get(t)
                    if q is not None and q.size:
                        break
                else:
                    continue
                v = vtime[t]
                if best is None or v < best_v or (v == best_v and t < best):
                    best, best_v = t, v
            return best
        for lane in lanes:
            tenants = all_lanes.get(lane)
            if tenants:
                for t, q in tenants.items():
                    if q.size and (among is None or t in among):
                        v = vtime[t]
                        if best is None or v < best_v or (v == best_v and t < best):
                            best, best_v = t, v
        return best

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
