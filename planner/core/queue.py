"""The planner's global queue: weighted fair share across tenants, then multi-level queues.

- Tenants: each has a virtual time (attained service / weight); the next call comes from
  the active tenant with the least virtual time, so a flooding tenant cannot starve
  another. A tenant that becomes active starts at the least active virtual time, so idle
  periods are not banked as credit.
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
  call of a program that attained 2 s for 8 s, and no call for more than a minute. Among
  a tenant's level heads that waited past their bound, the one waiting longest goes first
  (FIFO); the wait counts from when the call entered the queue (not from a submission
  that had to wait for its parents).
Per decision the cost is O(active tenants + levels), independent of the queue's length.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from planner.core.model import CallRecord, CallState


@dataclass(frozen=True)
class StarvationBound:
    """How long a queued call may be passed over: `ratio` times its expected service in
    seconds, at least `min_s` and at most `max_s` (seconds). `max_s = inf` and a huge
    ratio turn anti-starvation off."""

    ratio: float = 4.0
    min_s: float = 1.0
    max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_s < 0 or self.max_s < self.min_s:
            raise ValueError("starvation bound: need ratio >= 0 and 0 <= min_s <= max_s")

    def wait_s(self, service_s: float) -> float:
        return min(self.max_s, max(self.min_s, self.ratio * service_s))


def _seconds(score: float) -> float:
    return score


_QUEUED = CallState.QUEUED

# A queued call: (entered the queue at, may be passed over until, call).
_Entry = tuple[float, float, CallRecord]


class _TenantQueue:
    __slots__ = ("check_at", "levels", "size")

    def __init__(self, n_levels: int) -> None:
        self.levels: list[deque[_Entry]] = [deque() for _ in range(n_levels)]
        self.size = 0
        # At most the earliest time a level head may be passed over until: before it no head
        # starves, and `pop` takes the first level without looking at the others' heads.
        self.check_at = float("inf")


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
        self._weights = dict(tenant_weights or {})
        self._tenants: dict[str, _TenantQueue] = {}
        self._vtime: dict[str, float] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replaces the tenants' fair-share weights (a tenant not named: 1)."""
        if any(w <= 0 for w in weights.values()):
            raise ValueError("tenant weights must be positive")
        self._weights = dict(weights)

    def weight(self, tenant: str) -> float:
        w = self._weights.get(tenant, 1.0)
        if w <= 0:
            raise ValueError(f"tenant weight must be positive: {tenant}")
        return w

    def level_of(self, score: float) -> int:
        return bisect.bisect_right(self._thresholds, score)

    def bound_s(self, score: float) -> float:
        """Seconds a call of this score may wait before it is served ahead of its level."""
        return self.starvation.wait_s(self._score_seconds(score))

    def push(self, call: CallRecord, since: float | None = None) -> None:
        """Queues a call; its wait counts from `since` (default: its arrival)."""
        q = self._tenants.get(call.tenant)
        if q is None or q.size == 0:
            active = [self._vtime[t] for t, tq in self._tenants.items() if tq.size]
            floor = min(active) if active else 0.0
            self._vtime[call.tenant] = max(self._vtime.get(call.tenant, 0.0), floor)
            if q is None:
                q = self._tenants[call.tenant] = _TenantQueue(len(self._thresholds) + 1)
        start = call.arrival if since is None else since
        until = start + self.bound_s(call.score)
        level = q.levels[self.level_of(call.score)]
        if not level and until < q.check_at:  # a new head
            q.check_at = until
        level.append((start, until, call))
        if not call.in_queue:  # counted once, however often it is pushed
            call.in_queue = True
            q.size += 1
            self._len += 1

    def account(self, tenant: str, service_s: float) -> None:
        """Charges completed service to a tenant's virtual time."""
        self._vtime[tenant] = self._vtime.get(tenant, 0.0) + service_s / self.weight(tenant)

    def discard(self, call: CallRecord) -> None:
        """A queued call leaves without being popped (cancelled): it is no longer counted;
        its entry is dropped lazily, once its state is no longer QUEUED."""
        if not call.in_queue:  # not counted here (popped, parked or discarded already)
            return
        call.in_queue = False
        q = self._tenants[call.tenant]
        q.size -= 1
        self._len -= 1
        # Its entry may be a level head, and `check_at` a bound over the heads with it: a
        # call behind it, past its own bound, would wait unseen. The next pop looks at every
        # level's head once (O(levels)) and makes `check_at` exact again.
        q.check_at = -math.inf

    def size_of(self, tenant: str) -> int:
        q = self._tenants.get(tenant)
        return q.size if q is not None else 0

    def depths(self) -> dict[tuple[str, int], int]:
        """Queued calls per (tenant, level), for metrics: O(queue length), never called
        on the decision path."""
        out: dict[tuple[str, int], int] = {}
        for tenant, q in self._tenants.items():
            for i, level in enumerate(q.levels):
                n = sum(1 for entry in level
                        if entry[2].in_queue and entry[2].state is CallState.QUEUED)
                if n:
                    out[(tenant, i)] = n
        return out

    def tenants(self) -> list[str]:
        """Tenants with queued calls."""
        return [t for t, q in self._tenants.items() if q.size]

    def peek_tenants(self) -> list[str]:
        """Active tenants, fair-share order."""
        vtime = self._vtime
        active = [(vtime.get(t, 0.0), t) for t, q in self._tenants.items() if q.size]
        active.sort()
        return [t for _, t in active]

    def pop(self, now: float, tenant: str | None = None) -> CallRecord | None:
        """The next call: fair-share tenant first, then starving heads, then lowest level."""
        if tenant is not None:
            q = self._tenants.get(tenant)
            return self._pop(q, now) if q is not None and q.size else None
        for t in self.peek_tenants():
            call = self._pop(self._tenants[t], now)
            if call is not None:
                return call
        return None

    def _pop(self, q: _TenantQueue, now: float) -> CallRecord | None:
        """The tenant's next call, or None (every entry left: what was counted was stale).
        Before `check_at` no head starves: the first level whose head still waits here
        (stale heads dropped on the way, as `_drop_stale_head` does: inlined, as this is
        the decision path)."""
        if now <= q.check_at:
            pick = None
            for level in q.levels:
                while level:
                    call = level[0][2]
                    if call.in_queue and call.state is _QUEUED:
                        pick = level
                        break
                    level.popleft()
                    if call.in_queue:  # its state moved on without a discard: uncount it
                        call.in_queue = False
                        q.size -= 1
                        self._len -= 1
                    if level and level[0][1] < q.check_at:
                        q.check_at = level[0][1]
                if pick is not None:
                    break
        else:
            pick = self._starving_first(q, now)
        if pick is None:
            self._len -= q.size
            q.size = 0
            return None
        call = pick.popleft()[2]
        if call.in_queue:
            call.in_queue = False
            q.size -= 1
            self._len -= 1
        if pick and pick[0][1] < q.check_at:  # the level's new head
            q.check_at = pick[0][1]
        return call

    def _drop_stale_head(self, q: _TenantQueue, level: deque[_Entry]) -> bool:
        """Drops the level's head if it no longer waits here (discarded, or its state moved
        on): calls leave lazily. True if it dropped one."""
        call = level[0][2]
        if call.state is CallState.QUEUED and call.in_queue:
            return False
        level.popleft()
        if call.in_queue:  # its state moved on without a discard: stop counting it
            call.in_queue = False
            q.size -= 1
            self._len -= 1
        return True

    def _starving_first(self, q: _TenantQueue, now: float) -> deque[_Entry] | None:
        """The level whose head waited longest past its bound, else the first non-empty
        one; `check_at` becomes exact again (the heads' earliest bound)."""
        pick = None
        oldest = float("inf")
        check_at = float("inf")
        for level in q.levels:
            while level and self._drop_stale_head(q, level):
                pass
            if not level:
                continue
            since, until, _ = level[0]
            if pick is None:
                pick = level
            if now > until and since < oldest:
                pick, oldest = level, since
            if until < check_at:
                check_at = until
        q.check_at = check_at
        return pick
