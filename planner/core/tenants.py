"""Tenant shares of each worker's in-flight budget: isolation inside the engines' batches.

Fair share (planner/core/queue.py) decides whose call goes next, but a flooding tenant still
fills every slot the others leave free for a moment, and its calls share the engines'
batches with theirs (its prefills stall their decoding). So while several tenants are
active (a tenant is active while it has calls queued, parked or running), each gets a
share of every worker's budget proportional to its weight among the active tenants:

    share(t, w) = max_inflight(w) x weight(t) / (sum of the active tenants' weights)

On worker w, with n(t, w) of t's calls running there and free(w) slots free:
- a tenant below its share may take a free slot;
- a tenant at or above its share may take one only while the slots still free after it,
  free(w) - 1, cover the room held for the other tenants below their share on w: for
  each such tenant u, ceil(share(u, w) - n(u, w)) slots. Room is held for u while it has
  calls that could use w: in the global queue, or parked on w (`hold="waiting"`, the
  default: a slot stays free only for a call that is there to take it); or for as long as
  u is active at all (`hold="active"`: a tenant between calls, e.g. a ReAct program
  running a tool, keeps its room, so the flood cannot fill the batch meanwhile; this
  leaves slots idle). `hold="off"`: no shares.
With one active tenant nothing is held: work-conserving. The call of the tenant furthest
below its share on its worker (the least n/share, below 1, while another active tenant is
further up) gets a boost to its engine priority above every unboosted level, so that in
the engine's queue it is prefilled first.

Per decision the cost is O(active tenants) per worker looked at, from counts kept as calls
move (the queue's and the parked calls' per tenant, running calls per tenant and worker).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from planner.core.model import WorkerState

HOLDS = ("waiting", "active", "off")


class TenantShares:
    def __init__(self, weight: Callable[[str], float], *, hold: str = "waiting",
                 queued: Callable[[str], int], parked_on: Callable[[str, str], int]) -> None:
        if hold not in HOLDS:
            raise ValueError(f"tenant shares: hold must be one of {', '.join(HOLDS)}, "
                             f"got {hold!r}")
        self._weight = weight
        self.hold = hold
        self._queued = queued  # tenant -> its calls in the global queue
        self._parked_on = parked_on  # (worker id, tenant) -> its calls parked there
        self._running: dict[str, int] = {}  # tenant -> running calls, every worker
        self._fraction: dict[str, float] = {}  # active tenant -> its share of a budget

    def running(self, tenant: str, worker: WorkerState | None, delta: int) -> None:
        """A call of `tenant` started (+1) or ended (-1) on `worker` (None: one that left)."""
        _bump(self._running, tenant, delta)
        if worker is not None:
            _bump(worker.tenants, tenant, delta)

    def running_tenants(self) -> Iterable[str]:
        return self._running.keys()

    def refresh(self, active: set[str]) -> None:
        """The active tenants, once per dispatch (tenants only become active through
        submissions, which come between dispatches)."""
        if len(active) < 2 or self.hold == "off":
            self._fraction = {}
            return
        weights = {t: self._weight(t) for t in active}
        total = sum(weights.values())
        self._fraction = {t: w / total for t, w in weights.items()}

    @property
    def isolating(self) -> bool:
        """Whether several tenants are active (else every rule here is a no-op)."""
        return bool(self._fraction)

    def share(self, tenant: str, worker: WorkerState) -> float:
        """The tenant's share of the worker's budget (the whole budget when not isolating)."""
        if not self._fraction:
            return float(worker.max_inflight)
        return worker.max_inflight * self._fraction.get(tenant, 0.0)

    def allows(self, tenant: str, worker: WorkerState) -> bool:
        """Whether a call of `tenant` may take one of the worker's free slots."""
        free = worker.free
        if free <= 0:
            return False
        fraction = self._fraction
        if not fraction:
            return True
        cap = worker.max_inflight
        on = worker.tenants
        if on.get(tenant, 0) < cap * fraction.get(tenant, 0.0):
            return True
        room = 0
        hold_all = self.hold == "active"
        for u, f in fraction.items():
            if u == tenant:
                continue
            gap = cap * f - on.get(u, 0)
            if gap > 0 and (hold_all or self._queued(u) or self._parked_on(worker.worker_id, u)):
                room += math.ceil(gap - 1e-9)
                if free - 1 < room:
                    return False
        return True

    def boosted(self, tenant: str, worker: WorkerState) -> bool:
        """Whether `tenant` is furthest below its share on the worker (ties: each of them),
        below it, while another active tenant is further up."""
        fraction = self._fraction
        mine = fraction.get(tenant)
        if mine is None:
            return False
        cap = worker.max_inflight
        on = worker.tenants
        level = on.get(tenant, 0) / (cap * mine)
        if level >= 1.0:
            return False
        others = [on.get(u, 0) / (cap * f) for u, f in fraction.items() if u != tenant]
        return all(level <= x for x in others) and any(level < x for x in others)


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    n = counts.get(key, 0) + delta
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)
