"""Tenant shares of each worker's in-flight budget: isolation inside the engines' batches.

Fair share (planner/core/tenant_order.py) decides whose call goes next, but a flooding tenant still
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
With one active tenant nothing is held: work-conserving.

Holding slots is not enough: the calls of a tenant that floods share the engine's batches
with everyone's, and each decode step and each prefill iteration it adds slows every call
in the batch (SIMULATED: a quiet tenant's tokens came 2.7x slower under a 9x flood than
alone with the flood bounded to half the slots). So while a *light* tenant has calls on a
worker (running there, in the queue, or parked there) and those running there with every
call it has waiting, in any lane, fit its share there (a tenant with a backlog is not light), a
heavy tenant (not light) at or above its share of the worker's isolating budget, I(w) =
max_inflight(w) x `isolation_fraction`, may take a slot only while fewer than I(w) calls
run there: the worker's batch stays small for the light tenant's sake, and every heavy
tenant keeps its share of I(w).
A light tenant between calls, or busy on other workers, does not hold the heavy ones back
here. With no light tenant, or `isolation_fraction` 1, nothing changes. The default,
ISOLATION_FRACTION, holds heavy tenants to 18 of a budget of 32: in the engine model a light
tenant's token comes once per decode step, and a step (with the prefill iterations between
steps) lengthens with every call in the batch, so its latency under a flood is bounded by the
batch, and the heavy tenants' throughput with it (SIMULATED, `flood` on one engine, with
program admission's backlog bound: the quiet tenant at 1.29x its latency alone, the noisy
one completing 2.33 programs/s; 1.0 here gives 1.55x and 3.0/s, and without the backlog
bound 1.82x and 2.46/s; docs/bench/isolation). A tenant with programs
open that submitted or finished a call within the last BETWEEN_CALLS_S counts as active
also between its calls (a ReAct program's tool runs); one whose open programs went quiet
(a client that never ends them) does not hold the others back.

A worker whose budget is above `isolation_budget` (a planner with no cap) has free slots
that never run out, so its batch is judged by that budget instead (`_judged`): by their
loads (calls running and waiting, averaged over ~10 s: tenant_loads.py) against their shares of
it, every worker's together, a light tenant active (between calls too) holds the heavy ones
to the isolation budget on each worker, and to their share of its isolating fraction where
the light one has calls. Without the first bound the flood filled the engine while the
quiet tenant ran a tool, and its next call found a batch of ~100 (SIMULATED, `flood`
uncapped with an isolation budget of 32: the quiet tenant at 1.47x its latency alone with
the second bound alone, 1.27x with both; docs/bench/isolation). Counts of the moment, not
averages, held `mixed`'s tenants back at light load (a fan-out's burst of calls waiting made
its tenant heavy, and the calls held kept it so: 3.7% slower at 12 programs/s).

The call of the tenant furthest
below its share on its worker (the least n/share, below 1, while another active tenant is
further up) gets a boost to its engine priority above every unboosted level, so that in
the engine's queue it is prefilled first.

Per decision the cost is O(active tenants) per worker looked at, from counts kept as calls
move (the queue's and the parked calls' per tenant, running calls per tenant and worker).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Container, Iterable
from collections.abc import Set as AbstractSet

from planner.core.model import WorkerState
from planner.core.tenant_loads import TenantLoads

HOLDS = ("waiting", "active", "off")
ISOLATION_FRACTION = 0.5625  # of a worker's budget, what heavy tenants fill beside a light one
# The budget a larger (uncapped) worker's batch is judged by for isolation (`_judged`)
ISOLATION_BUDGET = 32
BETWEEN_CALLS_S = 10.0  # a tenant heard from this recently, with programs open, is active


class TenantShares:
    def __init__(self, weight: Callable[[str], float], *, hold: str = "waiting",
                 queued: Callable[[str], int], parked_on: Callable[[str, str], int],
                 backlog: Callable[[str], int] | None = None,
                 isolation_fraction: float = ISOLATION_FRACTION,
                 isolation_budget: int = ISOLATION_BUDGET) -> None:
        """`isolation_budget`: a worker whose budget is larger (a planner with no cap: it
        grants every call at once) is judged as if this were its budget for isolation alone:
        a light tenant's calls fit its share of it, and heavy tenants then fill at most
        `isolation_fraction` of it; 0: the worker's own budget."""
        if hold not in HOLDS:
            raise ValueError(f"tenant shares: hold must be one of {', '.join(HOLDS)}, "
                             f"got {hold!r}")
        if not 0 < isolation_fraction <= 1:
            raise ValueError("tenant shares: isolation_fraction must be in (0, 1]")
        if isolation_budget < 0:
            raise ValueError("tenant shares: isolation_budget must be >= 0")
        self.isolation_budget = isolation_budget
        self.loads = TenantLoads(isolation_budget)  # by which uncapped workers are judged
        self._weight = weight
        self.hold = hold
        self.isolation_fraction = isolation_fraction
        self._queued = queued  # tenant -> its calls in the global queue
        self._parked_on = parked_on  # (worker id, tenant) -> its calls parked there
        # tenant -> its calls waiting anywhere (every lane: at least `queued`'s count, which
        # `admitted` reads first): a tenant with a backlog is never light, even where few of
        # its calls wait (issue #17: with calls parked on their homes as they are queued, a
        # tenant with hundreds waiting elsewhere looked light on every worker, and heavy
        # ones were held back with slots free)
        self._backlog = backlog or queued
        self._running: dict[str, int] = {}  # tenant -> running calls, every worker
        self._fraction: dict[str, float] = {}  # active tenant -> its share of a budget
        self._heard: dict[str, float] = {}  # tenant -> when a call of it last came or ended
        # At most the earliest time in `_heard` (as of the last `refresh_from`, and every time
        # added since is later: the clock never goes back): until BETWEEN_CALLS_S after it,
        # no tenant heard from is stale (`unchanged`)
        self._heard_floor = -math.inf

    def running(self, tenant: str, worker: WorkerState | None, delta: int) -> None:
        """A call of `tenant` started (+1) or ended (-1) on `worker` (None: one that left)."""
        running = self._running
        if delta > 0:  # bump_count's, inlined: every call starts and ends here
            running[tenant] = running.get(tenant, 0) + delta
            if worker is not None:
                on = worker.tenants
                on[tenant] = on.get(tenant, 0) + delta
            return
        bump_count(running, tenant, delta)
        if worker is not None:
            bump_count(worker.tenants, tenant, delta)

    def running_of(self, tenant: str) -> int:
        """The tenant's running calls, every worker."""
        return self._running.get(tenant, 0)

    def running_tenants(self) -> Iterable[str]:
        return self._running.keys()

    def heard(self, tenant: str, now: float) -> None:
        """A call of `tenant` was submitted or ended."""
        self._heard[tenant] = now

    def between_calls(self, now: float, open_of: Container[str]) -> list[str]:
        """Tenants with programs open (in `open_of`) heard from within BETWEEN_CALLS_S."""
        heard = self._heard
        stale = [t for t, at in heard.items() if now - at > BETWEEN_CALLS_S]
        for t in stale:
            del heard[t]
        return [t for t in heard if t in open_of]

    def refresh_from(self, queued: set[str], now: float, open_of: Container[str]) -> None:
        """`refresh` with the active tenants: those with calls queued (`queued`, a set this
        takes and adds to) or running, and those `between_calls` (the same set, built in
        one pass: once per dispatch)."""
        active = queued
        active.update(self._running)
        heard = self._heard
        stale: list[str] | None = None
        for t, at in heard.items():
            if now - at > BETWEEN_CALLS_S:
                if stale is None:
                    stale = []
                stale.append(t)
            elif t in open_of:
                active.add(t)
        if stale:
            for t in stale:
                del heard[t]
        self._heard_floor = min(now, min(heard.values())) if heard else now
        self.refresh(active)

    def unchanged(self, counted: AbstractSet[str], now: float) -> bool:
        """Whether `refresh_from` would change nothing, known without listing the active
        tenants (the decision path's usual case, once per dispatch): the shares are those
        of some tenants, each of them has a call running, no other tenant has one running
        or queued (`counted`: a superset of the tenants with calls queued) or was heard
        from, and none heard from went stale since the last `refresh_from` (it would drop
        them)."""
        fraction = self._fraction.keys()
        return (bool(fraction) and now - self._heard_floor <= BETWEEN_CALLS_S
                and self._running.keys() == fraction and counted <= fraction
                and self._heard.keys() <= fraction)

    def refresh(self, active: set[str]) -> None:
        """The active tenants, once per dispatch (tenants only become active through
        submissions, which come between dispatches)."""
        if len(active) < 2 or self.hold == "off":
            self._fraction = {}
            return
        if active == self._fraction.keys():
            return  # the same tenants: the same fractions
        weights = {t: self._weight(t) for t in active}
        total = sum(weights.values())
        self._fraction = {t: w / total for t, w in weights.items()}

    def invalidate(self) -> None:
        """The tenants' weights changed: the next dispatch works the fractions out again
        (`unchanged` and `refresh` keep them while the same tenants stay active)."""
        self._fraction = {}

    @property
    def isolating(self) -> bool:
        """Whether several tenants are active (else every rule here is a no-op)."""
        return bool(self._fraction)

    def judges(self, worker: WorkerState) -> bool:
        """Whether the worker's budget is above the isolation budget, so that its batch is
        judged by that budget (`_judged`; uncapped, its slots never run out)."""
        return 0 < self.isolation_budget < worker.max_inflight

    def share(self, tenant: str, worker: WorkerState) -> float:
        """The tenant's share of the worker's budget (the whole budget when not isolating)."""
        if not self._fraction:
            return float(worker.max_inflight)
        return worker.max_inflight * self._fraction.get(tenant, 0.0)

    def allows(self, tenant: str, worker: WorkerState) -> bool:
        """Whether a call of `tenant` may take one of the worker's free slots."""
        return self.gate(worker)(tenant)

    def gate(self, worker: WorkerState) -> Callable[[str], bool]:
        """Which tenants may take one of the worker's free slots, as it stands now (ask
        again once a call starts or ends there, or a tenant stops waiting). The room held
        is computed once: a tenant at or above its share adds none of its own. Fewer calls
        of a tenant waiting (one of its calls popped) never closes its own gate: dispatch
        does not ask again for the worker that popped it (tests/planner/core/
        test_tenants_gate_monotone.py)."""
        allowed = self.admitted(worker)
        return _always if allowed is None else allowed.__contains__

    def admitted(self, worker: WorkerState) -> set[str] | None:
        """`gate` as a set: the tenants that may take one of the worker's free slots, None
        when every tenant may (the dispatch path's form: no closure, no call per tenant)."""
        free = worker.max_inflight - worker.inflight
        if free <= 0:
            return set()
        fraction = self._fraction
        if not fraction:
            return None
        cap, on, worker_id = worker.max_inflight, worker.tenants, worker.worker_id
        if 0 < self.isolation_budget < cap:  # `judges`, inlined: the decision path
            return self._judged(worker, fraction, self.isolation_budget)
        hold_all = self.hold == "active"
        queued, parked_on, backlog = self._queued, self._parked_on, self._backlog
        room = 0
        iso = cap * self.isolation_fraction
        light: set[str] = set()  # tenants with calls here or waiting, all within their share
        below: set[str] = set()  # tenants below their share here (n < cap x f: gap > 0)
        for u, f in fraction.items():
            n = on.get(u, 0)
            gap = cap * f - n
            if gap <= 0:
                continue  # at or above its share: holds no room, and is not light (a
                # backlog is never negative); the decision path: no counts looked up
            below.add(u)
            in_queue = queued(u)
            waiting = in_queue or parked_on(worker_id, u)  # calls that could use w (counts)
            if hold_all or waiting:
                room += math.ceil(gap - 1e-9)
            if (n or waiting) and in_queue < gap and backlog(u) < gap:
                light.add(u)  # its calls here and waiting fit its share: isolate for it
        small = not light or iso >= cap or worker.inflight < iso
        spare = free - 1 >= room
        if spare and (small or len(light) == len(fraction)):
            return None
        # Past here a tenant without a share (not active) may not take the slot: it would
        # need spare room and `small`, which let every tenant on above.
        if small:  # and no spare room: the tenants below their share, as the rules below
            return below
        allowed: set[str] = set()
        for t, f in fraction.items():
            n = on.get(t, 0)
            if n < cap * f and (small or t in light or n < iso * f):
                allowed.add(t)  # below its share (and of the isolating budget, if heavy)
            elif spare and (small or t in light):
                allowed.add(t)
        return allowed

    def judge(self, healthy: Collection[WorkerState]) -> None:
        """The healthy workers, when they change (planner/core/tenant_loads.py)."""
        self.loads.judge(healthy)

    def observe(self, now: float) -> None:
        """Each active tenant's calls running and waiting folded into its load (once per
        dispatch; planner/core/tenant_loads.py)."""
        loads = self.loads
        if loads.judging:
            running, backlog = self._running, self._backlog
            loads.observe(now, self._fraction or running.keys(),
                          lambda u: running.get(u, 0) + backlog(u), running.__contains__)

    def _judged(self, worker: WorkerState, fraction: dict[str, float],
                judged: int) -> set[str] | None:
        """`admitted` for a worker whose budget is above `isolation_budget` (uncapped: the planner
        grants every call at once, and the engine's batch is whatever comes). Free slots do not
        run out there, so no room is held. A tenant is judged by its load (its calls running and
        waiting, averaged over about 10 s) against its share of `judged` x the workers
        (planner/core/tenant_loads.py). While a light tenant is active (between calls too),
        heavy ones fill this worker only up to `judged` calls, and only to their share of
        `judged` x isolation_fraction while a light tenant has calls running there or waiting
        for it; the others are never held here. So the flood does not take the batch past
        `judged` while a light tenant runs a tool, and its next call does not find ~100 calls
        there (issue #17)."""
        light, heavy = self.loads.classify(fraction)
        if not light or not heavy:
            return None
        inflight = worker.inflight
        iso = judged * self.isolation_fraction
        if inflight < iso:
            return None
        on, worker_id = worker.tenants, worker.worker_id
        here = any(on.get(u, 0) or self._queued(u) or self._parked_on(worker_id, u)
                   for u in light)
        allowed = set(fraction).difference(heavy)
        for t in heavy:
            if (on.get(t, 0) < iso * fraction[t]) if here else inflight < judged:
                allowed.add(t)
        return allowed

    def boosted(self, tenant: str, worker: WorkerState) -> bool:
        """Whether `tenant` is furthest below its share on the worker (ties: each of them),
        below it, while another active tenant is further up."""
        fraction = self._fraction
        mine = fraction.get(tenant)
        if mine is None:
            return False
        cap = worker.max_inflight
        on = worker.tenants
        if not cap * mine > 0:  # (weights are checked: a fraction is never 0)
            return False
        level = on.get(tenant, 0) / (cap * mine)
        if level >= 1.0:
            return False
        further_up = False  # another tenant's level is above this one's
        for u, f in fraction.items():  # `tenant` itself: x == level, which changes nothing
            x = on.get(u, 0) / (cap * f) if cap * f > 0 else math.inf
            if x < level:
                return False
            further_up = further_up or level < x
        return further_up


def bump_count(counts: dict[str, int], key: str, delta: int) -> None:
    """Adds `delta` to a per-tenant count, dropping the tenant at zero."""
    n = counts.get(key, 0) + delta
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)


def _always(tenant: str) -> bool:
    return True



def _never(tenant: str) -> bool:
    return False
