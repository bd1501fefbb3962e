"""Calls waiting for their home worker: the engine that holds their program's context.

When a call's home (see `Affinity.home`) has no free admission budget, sending the call to
another engine costs a re-prefill of its whole context there, and under load every such
move lowers the cluster's prefix hit rate, which costs throughput, which deepens the load.
So the planner parks a call on its home from when it is queued: it waits in the home's
lane of the queue (planner/core/queue.py: the same fair share, levels and starvation bounds
as the global lane), and when the home has a free slot, the home takes the next call of its
lane and of the global lane together, in that order. A dispatch for a worker's free slot
reads only those two lanes, never the calls waiting for full workers.

A call parked `max_wait_s` or longer is released to the global lane, to run anywhere (it is
never parked again), once the queue has moved on without it: after a call of its level or a
worse one, queued `max_wait_s` or more after it, started on some worker (`passed`; the next
dispatches release such calls, a few per level each: `release_due`), or when a worker has a
free slot that nothing else takes (`release_expired`). So, as when
calls were parked only once they reached the head of the queue, a call waits for its home
at most about `max_wait_s` longer than the queue makes every call wait, and under an even
load calls keep their homes however long the queue. Parked calls are counted per worker and
tenant (tenant shares, planner/core/tenants.py, hold room for them).

A call released by time whose home is a worker above tenant isolation's budget
(planner/core/tenants.py `TenantShares.judges`: a planner with no cap) with a free slot was
held there by tenant isolation alone (its tenant heavy while a light one is active there);
the dispatcher parks it there again (`park_again`: planner/core/dispatch.py `_keep_home`)
until it has waited its starvation bound's longest (`starvation_max_s`), unless it is one of
a fan-out's calls (moved together, they prefill their shared context once). Moved, it would
re-prefill its whole context on another engine, most often one of the light tenant's:
released, a flood's held calls kept moving between engines (SIMULATED, `flood` over 4
engines, no budget: 1,030 moves, the quiet tenant's engines prefilling ~50% more tokens per
second than the one engine of the one-engine run; docs/bench/isolation).

A parked call is also released to the global lane once calls start on other workers while
it is `max_wait_s` past its starvation bound (`until`: planner/core/queue.py;
`release_starving`, after such a dispatch), and the next worker with a free slot serves it
first, as a starving call of the global lane: only its home reads its lane, so a stream of
better-level calls on the other workers, none of which passes it by, kept it parked until
its home freed a slot, however long (routing review 2026-12-06: 120 s and counting against
a bound of 8 s). So a call waits at most about `max_wait_s` longer than its bound lets the
queue make it wait, as it does behind calls of its own level. One that nothing passes over
waits for its home as above.

Pure and synchronous; calls that stop waiting (cancelled, failed) are forgotten by the
planner as they end, and their entries here and in the queue are dropped lazily.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable

from planner.core.lanes import SEQ_BITS, SEQ_MASK, due_key
from planner.core.model import CallRecord, CallState
from planner.core.queue import MultiLevelQueue

_QUEUED = CallState.QUEUED
_NEVER = -math.inf  # a level's horizon before any of its calls was passed by
RELEASE_BATCH = 4  # calls of a level a dispatch releases at most (the others at the next)
COMPACT_MIN = 64  # a level's order is rebuilt past twice its live entries and this many

# A parked call's entry is its record, as in the queue (planner/core/queue.py): parked since
# `parked_since`, queued at `queued_at`, on its lane's worker (`lane`), all set as it is
# parked and kept while it is. No tuple per parking: each one was a tracked allocation,
# alive while the call waits, that every young collection walked. A record is parked once at
# most (a released call never parks again; a retry is a new record), so an order's entry is
# stale once its key maps to another record, or to none: once the record's `parked` is
# False (set exactly while `_parked` maps its key to it: read from the record, no look-up);
# parkings come in time order, so a stale entry is dropped wherever it is met (an order's
# live entries keep their order).
_Parked = CallRecord


class _Level:
    """A level's parked calls, oldest first, and its horizon: calls of the level queued by
    then were passed by (-inf: none yet). `limit`: the order's length past which it is
    mostly stale and rebuilt (`ParkedCalls._compact`)."""

    __slots__ = ("horizon", "limit", "order")

    def __init__(self) -> None:
        self.order: deque[_Parked] = deque()
        self.horizon = _NEVER
        self.limit = COMPACT_MIN


class ParkedCalls:
    def __init__(self, max_wait_s: float, queue: MultiLevelQueue) -> None:
        if not max_wait_s >= 0:  # (nan: refused)
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.max_wait_s = max_wait_s
        self._queue = queue
        self._parked: dict[str, _Parked] = {}  # key -> its parking
        self._order: deque[_Parked] = deque()  # parked oldest first
        self._by_level: dict[int, _Level] = {}  # per level of the queue
        # level -> its own _Level and those of the better levels (each that has one): what
        # a call of that level passes by as it starts (`passed`)
        self._up_to: list[list[_Level]] = [[] for _ in range(queue.level_of(math.inf) + 1)]
        self._released: set[str] = set()  # keys that waited their turn and may go anywhere
        self.total = 0  # calls parked so far
        self._on: dict[str, dict[str, int]] = {}  # worker -> tenant -> calls parked there
        # parked calls by their starvation bound: a min-heap of ints (planner/core/lanes.py
        # `due_key`: until, then the push's number; no tuple per parking) and each push's
        # call; an entry is stale once its call is no longer parked
        self._bounds: list[int] = []
        self._bound_calls: dict[int, _Parked] = {}
        self._pushes = 0

    def size_of(self, tenant: str) -> int:
        """Calls of `tenant` parked anywhere (O(workers): off the decision path)."""
        return sum(on.get(tenant, 0) for on in self._on.values())

    def count_on(self, worker_id: str, tenant: str) -> int:
        """Calls of `tenant` parked on `worker_id` (waiting for it)."""
        on = self._on.get(worker_id)
        return on.get(tenant, 0) if on is not None else 0

    def counts(self) -> dict[tuple[str, str], int]:
        """Parked calls per (worker, tenant)."""
        return {(w, t): n for w, on in self._on.items() for t, n in on.items() if n}

    def tenants(self) -> Iterable[str]:
        """Tenants with parked calls (O(workers): off the decision path)."""
        return {t for on in self._on.values() for t in on}

    def holds(self, call: CallRecord) -> bool:
        return call.key in self._parked

    def __len__(self) -> int:
        return len(self._parked)

    def may_park(self, call: CallRecord) -> bool:
        return self.max_wait_s > 0 and call.key not in self._released

    def waiting_on(self, worker_id: str) -> bool:
        """Whether calls are parked on `worker_id`."""
        return bool(self._on.get(worker_id))

    def park(self, call: CallRecord, worker_id: str, now: float,
             since: float | None = None) -> None:
        """Parks a call on its home from `now`; its place in the queue counts from `since`
        (as MultiLevelQueue.push: default its arrival)."""
        key, tenant = call.key, call.tenant
        self._drop(key)
        self._queue.push(call, since, lane=worker_id)
        call.parked_since = now
        self.total += 1
        self._parked[key] = call
        call.parked = True
        on = self._on.get(worker_id)
        if on is None:
            on = self._on[worker_id] = {}
        on[tenant] = on.get(tenant, 0) + 1
        self._order.append(call)
        if call.until != math.inf:
            self._pushes += 1
            heapq.heappush(self._bounds, due_key(call.until, self._pushes))
            self._bound_calls[self._pushes] = call
            if len(self._bounds) > 2 * len(self._parked) + 64:  # mostly stale: rebuilt
                calls = self._bound_calls
                self._bounds = [e for e in self._bounds if calls[e & SEQ_MASK].parked]
                heapq.heapify(self._bounds)
                self._bound_calls = {e & SEQ_MASK: calls[e & SEQ_MASK] for e in self._bounds}
        at_level = self._level(self._queue.level_of(call.score))
        at_level.order.append(call)
        if len(at_level.order) > at_level.limit:
            self._compact(at_level)

    @staticmethod
    def _compact(at_level: _Level) -> None:
        """A level's order without its stale entries (records no longer parked). Only
        `release_due` drops them otherwise, from the head, once a call has waited
        `max_wait_s`: while the homes keep up, each call parked stayed here after it ended,
        its record with it (a soak's planner held 12,000, ~1.25 KiB each, and kept the
        allocator's arenas they filled). Rebuilt past twice its live entries: O(1) per
        parking, amortized; the live entries keep their order."""
        order = at_level.order
        live = [c for c in order if c.parked]
        order.clear()
        order.extend(live)
        at_level.limit = 2 * len(live) + COMPACT_MIN

    def _level(self, level: int) -> _Level:
        by_level = self._by_level.get(level)
        if by_level is None:
            by_level = self._by_level[level] = _Level()
            for above in range(level, len(self._up_to)):
                self._up_to[above].append(by_level)
        return by_level

    def relevel(self, call: CallRecord, level: int) -> None:
        """A parked call's score moved to `level` (it aged: planner/core/aging.py): it joins
        that level's order, by when it was parked, so that a call of that level or a worse
        one passing it by releases it (diff review 2026-12-06: one aged from level 2 to 0
        was released only by calls of level 2 or worse). Its entry at its old level stays;
        whichever releases it first, the other is stale then. O(the level's calls parked
        after it): rare."""
        order = self._level(level).order
        i = len(order)
        while i and (not order[i - 1].parked
                     or order[i - 1].parked_since > call.parked_since):  # type: ignore[operator]
            i -= 1
        order.insert(i, call)

    def expired(self, now: float) -> bool:
        """Whether a call has been parked `max_wait_s` or longer."""
        order = self._order
        while order:
            call = order[0]
            if call.parked:
                return now - call.parked_since >= self.max_wait_s  # type: ignore[operator]
            order.popleft()  # no longer parked
        return False

    def release_expired(self, now: float) -> list[CallRecord]:
        """Calls parked `max_wait_s` or longer, no longer parked (their parked time counted,
        `parked_s`), moved from their homes' lanes to the global one."""
        out: list[CallRecord] = []
        order, wait = self._order, self.max_wait_s
        while order:
            head = order[0]
            if not head.parked:
                order.popleft()  # no longer parked
                continue
            since = head.parked_since
            if now - since < wait:  # type: ignore[operator]
                break  # parked since then: so are those behind it
            order.popleft()
            self._let_go(head, since, now, out)  # type: ignore[arg-type]
        if out:
            self._queue.to_global(out)
        return out

    def _let_go(self, call: _Parked, since: float, now: float, out: list[CallRecord]) -> None:
        """Un-parks a call parked `since`; a queued one, its parked time counted
        (`parked_s`), goes to `out` (its caller moves them to the global lane)."""
        if self._unpark(call):
            call.parked_s += now - since
            call.parked_since = None
            out.append(call)

    def starving(self, now: float) -> bool:
        """Whether a parked call has waited `max_wait_s` past its starvation bound (O(1)
        but for the stale entries it drops)."""
        bounds, calls = self._bounds, self._bound_calls
        while bounds:
            seq = bounds[0] & SEQ_MASK
            if calls[seq].parked:
                return (bounds[0] >> SEQ_BITS) <= (now - self.max_wait_s) * 1e6
            heapq.heappop(bounds)
            del calls[seq]
        return False

    def release_starving(self, now: float) -> list[CallRecord]:
        """Calls parked `max_wait_s` past their starvation bound, no longer parked (their
        parked time counted, `parked_s`; they may not park again), moved from their homes'
        lanes to the global one, where the first worker with a free slot serves them as
        starving."""
        out: list[CallRecord] = []
        bounds, calls, cut = self._bounds, self._bound_calls, (now - self.max_wait_s) * 1e6
        while bounds and (bounds[0] >> SEQ_BITS) <= cut:
            call = calls.pop(heapq.heappop(bounds) & SEQ_MASK)
            if call.parked:
                self._let_go(call, call.parked_since, now, out)  # type: ignore[arg-type]
        if out:
            self._queue.to_global(out)
        return out

    def passed(self, level: int, queued_at: float) -> None:
        """A call of `level`, queued at `queued_at`, started: the calls of its level or a
        better one queued `max_wait_s` or more before it are due for release (`release_due`)
        once parked that long. O(levels up to `level`)."""
        cut = queued_at - self.max_wait_s
        for lv in self._up_to[level]:
            if cut > lv.horizon:
                lv.horizon = cut

    def release_due(self, now: float) -> list[CallRecord]:
        """Calls parked `max_wait_s` or longer that a later call of their level or a worse
        one passed by (`passed`): the queue moved on without them. At most RELEASE_BATCH per
        level, oldest first (the rest at the next dispatches: a decision's cost stays
        bounded); no longer parked (their parked time counted, `parked_s`), moved from their
        homes' lanes to the global one. `_release`'s, inlined: the decision path's tail
        (the slowest decisions are those that release calls)."""
        out: list[CallRecord] = []
        parked, wait, released = self._parked, self.max_wait_s, self._released
        on_worker, oldest = self._on, self._order
        for at_level in self._by_level.values():
            order = at_level.order
            if not order:
                continue
            horizon = at_level.horizon
            if horizon == _NEVER:  # none of its calls passed by yet
                continue
            left = RELEASE_BATCH
            while order:
                head = order[0]
                if not head.parked:
                    order.popleft()  # no longer parked
                    continue
                since = head.parked_since
                if now - since < wait:  # type: ignore[operator]
                    break  # parked since then: so are those behind it
                if head.queued_at > horizon:
                    break
                order.popleft()
                key = head.key
                del parked[key]
                head.parked = False
                if oldest[0] is head:  # the oldest parked call: `expired` need not drop it
                    oldest.popleft()
                tenant = head.tenant  # _uncount's, inlined
                on = on_worker[head.lane]
                n = on[tenant]
                if n > 1:
                    on[tenant] = n - 1
                else:
                    del on[tenant]
                    if not on:
                        del on_worker[head.lane]
                if head.state is not _QUEUED:  # it stopped waiting: out of its lane, no more
                    self._queue.discard(head)
                    continue
                released.add(key)
                head.parked_s += now - since  # type: ignore[operator]
                head.parked_since = None
                out.append(head)
                left -= 1
                if not left:
                    break
        if out:
            self._queue.to_global(out)
        return out

    def park_again(self, call: CallRecord, worker_id: str, now: float) -> None:
        """A call just released (`release_due`, `release_expired`) parked on its home again
        from `now`, for another `max_wait_s`, its place in the queue still counting from
        when it was queued (its parked time so far is kept in `parked_s`)."""
        self._released.discard(call.key)
        self._queue.discard(call)  # out of the global lane
        self.park(call, worker_id, now, call.queued_at)
        self.total -= 1  # the same parking, not another

    def release_worker(self, worker_id: str) -> list[CallRecord]:
        """Every call parked on a worker that left or turned unhealthy (O(parked calls):
        rare)."""
        keys = [k for k, call in self._parked.items() if call.lane == worker_id]
        return [call for key in keys if (call := self._release(key)) is not None]

    def forget(self, call: CallRecord) -> None:
        """The call was dispatched or ended: nothing here refers to it any more."""
        self._released.discard(call.key)
        self._drop(call.key)

    def _drop(self, key: str) -> _Parked | None:
        entry = self._parked.pop(key, None)
        if entry is not None:
            entry.parked = False
            self._uncount(entry)
        return entry

    def _uncount(self, call: _Parked) -> None:
        """A call no longer parked: its worker's count of its tenant, >= 1 here, down by
        one (bump_count's, inlined)."""
        tenant, worker_id = call.tenant, call.lane
        on = self._on[worker_id]
        n = on[tenant]
        if n > 1:
            on[tenant] = n - 1
        else:
            del on[tenant]
            if not on:
                del self._on[worker_id]

    def _release(self, key: str) -> CallRecord | None:
        """Un-parks a call; a queued one (returned) leaves its home's lane and may not park
        again."""
        call = self._parked[key]
        if not self._unpark(call):
            return None
        self._queue.discard(call)
        return call

    def _unpark(self, call: _Parked) -> bool:
        """`_release` but for the queue: whether the call still waits (it may not park
        again: its caller takes it out of its home's lane); one that stopped waiting leaves
        that lane here."""
        del self._parked[call.key]
        call.parked = False
        self._uncount(call)
        if call.state is not _QUEUED:
            self._queue.discard(call)
            return False
        self._released.add(call.key)
        return True
