"""The dispatch path's shortcuts answer as the general forms they replace (issue #17: the
cost of a decision at 10k queued calls). `MultiLevelQueue.first_tenant` is the first of
`peek_tenants` that the shares admit; `TenantShares.admitted` is the gate as it was written
before (the reference below, a closure per worker) for every tenant, one without a share
included; `TenantShares.refresh_from` sets the fractions `refresh` sets from the three
sources and forgets the same stale tenants. Pure; fixed-seed samples, not timed."""

from __future__ import annotations

import math
import random

import pytest

from planner.core.model import CallRecord, WorkerState
from planner.core.queue import GLOBAL, MultiLevelQueue
from planner.core.tenants import BETWEEN_CALLS_S
from tests.planner.test_tenant_shares import shares_with

WEIGHTS = {"a": 1.0, "b": 1.0, "c": 2.0, "d": 4.0}
BUDGET = 16


def _reference_allowed(worker: WorkerState, fraction: dict[str, float], hold: str,
                       iso_fraction: float, queued: dict[str, int], parked: dict[str, int],
                       backlog: dict[str, int], tenant: str) -> bool:
    """The gate's rules as a closure per worker (planner/core/tenants.py before #17's
    shortcut), for one tenant."""
    free = max(0, worker.max_inflight - worker.inflight)
    if free <= 0:
        return False
    if not fraction:
        return True
    cap, on = worker.max_inflight, worker.tenants
    room, iso, light = 0, cap * iso_fraction, set()
    for u, f in fraction.items():
        n = on.get(u, 0)
        gap = cap * f - n
        if gap <= 0:
            continue
        waiting = queued.get(u, 0) or parked.get(u, 0)
        if hold == "active" or waiting:
            room += math.ceil(gap - 1e-9)
        if (n or waiting) and backlog.get(u, 0) < gap:
            light.add(u)
    small = not light or iso >= cap or worker.inflight < iso
    if free - 1 >= room and (small or len(light) == len(fraction)):
        return True
    n, f = on.get(tenant, 0), fraction.get(tenant, 0.0)
    if n < cap * f and (small or tenant in light or n < iso * f):
        return True
    return free - 1 >= room and (small or tenant in light)


@pytest.mark.parametrize("hold", ["waiting", "active"])
@pytest.mark.parametrize("iso_fraction", [0.5625, 1.0])
def test_admitted_is_the_reference_gate_for_every_tenant(hold: str, iso_fraction: float) -> None:
    rng = random.Random(31)
    shortcut = restricted = 0
    for _ in range(2000):
        tenants = rng.sample(list(WEIGHTS), rng.randint(1, 4))
        running = {t: rng.randint(0, 6) for t in tenants}
        queued = {t: rng.choice((0, 0, 1, 3, 40)) for t in tenants}
        parked = {t: rng.choice((0, 0, 1, 2)) for t in tenants}
        backlog = {t: queued[t] + parked[t] + rng.choice((0, 0, 3, 500)) for t in tenants}
        shares, worker = shares_with(running, queued=queued, parked_here=parked,
                                     backlog=backlog, budget=BUDGET, hold=hold,
                                     isolation=iso_fraction, weights=WEIGHTS)
        if worker.inflight > BUDGET:
            continue
        fraction = dict(shares._fraction)
        admitted = shares.admitted(worker)
        for tenant in [*WEIGHTS, "outsider"]:
            want = _reference_allowed(worker, fraction, hold, iso_fraction, queued, parked,
                                      backlog, tenant)
            got = admitted is None or tenant in admitted
            assert got is want, (running, queued, parked, backlog, tenant)
            assert shares.allows(tenant, worker) is want
        shortcut += admitted is None
        restricted += admitted is not None and 0 < len(admitted) < len(fraction)
    assert shortcut > 100 and restricted > 100  # both forms reached


def _call(i: int, tenant: str, score: float) -> CallRecord:
    return CallRecord("p", f"c{i}", tenant, "main", (), 10, 4, float(i), score=score)


def test_first_tenant_is_the_first_peeked_among_the_admitted() -> None:
    rng = random.Random(7)
    for round_ in range(300):
        queue = MultiLevelQueue((1.0, 4.0), tenant_weights=WEIGHTS)
        lanes = {GLOBAL: [], "w0": [], "w1": []}
        for i in range(rng.randint(0, 12)):
            tenant, lane = rng.choice(list(WEIGHTS)), rng.choice(list(lanes))
            call = _call(i, tenant, rng.choice((0.5, 2.0, 9.0)))
            queue.push(call, lane=lane)
            lanes[lane].append(call)
        for tenant in WEIGHTS:  # ties in virtual time included (then by name)
            queue.fair_share.account(tenant, rng.choice((0.0, 1.0, 2.0)))
        for calls in lanes.values():  # some lanes drained: a tenant with none left
            for call in calls:
                if rng.random() < 0.3:
                    queue.discard(call)
        among = None if round_ % 3 == 0 else set(rng.sample(list(WEIGHTS), rng.randint(0, 3)))
        for looked in ((GLOBAL,), (GLOBAL, "w0"), ("w1",), (GLOBAL, "w0", "w1")):
            want = next((t for t in queue.peek_tenants(looked)
                         if among is None or t in among), None)
            assert queue.first_tenant(looked, among) == want


def test_refresh_from_sets_what_refresh_sets_from_the_three_sources() -> None:
    rng = random.Random(3)
    for _ in range(300):
        running = {t: rng.choice((0, 0, 2)) for t in WEIGHTS}
        a, _ = shares_with({t: n for t, n in running.items() if n}, weights=WEIGHTS)
        b, _ = shares_with({t: n for t, n in running.items() if n}, weights=WEIGHTS)
        now = 100.0
        for shares in (a, b):
            for t in WEIGHTS:
                if rng.random() < 0.5:
                    shares.heard(t, now - rng.choice((1.0, BETWEEN_CALLS_S, 30.0)))
        b._heard = dict(a._heard)
        queued = [t for t in WEIGHTS if rng.random() < 0.3]
        open_of = {t: 1 for t in WEIGHTS if rng.random() < 0.6}
        a.refresh({*queued, *a.running_tenants(), *a.between_calls(now, open_of)})
        b.refresh_from(set(queued), now, open_of)
        assert b._fraction == a._fraction and b._heard == a._heard


def test_unchanged_only_where_refresh_from_changes_nothing() -> None:
    """`TenantShares.unchanged` (the dispatch path skips `refresh_from` on it) is True only
    where `refresh_from` would leave the fractions and the tenants heard from as they are;
    a walk of running calls, submissions heard and queued tenants, time moving on."""
    rng = random.Random(5)
    shares, worker = shares_with({"a": 1, "b": 1}, weights=WEIGHTS)
    counted: dict[str, int] = {}  # the queue's counts of tenants (a superset of the queued)
    now, skipped = 0.0, 0
    for _ in range(3000):
        now += rng.choice((0.001, 0.5, 4.0, 12.0))
        t = rng.choice(list(WEIGHTS))
        move = rng.random()
        if move < 0.2:
            shares.running(t, worker, +1)
        elif move < 0.6 and shares.running_of(t):
            shares.running(t, worker, -1)
        elif move < 0.8:
            shares.heard(t, now)
        elif move < 0.9:  # queued, not any more, or gone from the counts
            counted[t] = rng.choice((0, 1))
        elif move < 0.95:
            counted.pop(t, None)
        open_of = {u: 1 for u in WEIGHTS if rng.random() < 0.8}
        queued = {u for u, n in counted.items() if n}
        if shares.unchanged(counted.keys(), now):
            skipped += 1
            fraction, heard = dict(shares._fraction), list(shares._heard.items())
            shares.refresh_from(queued, now, open_of)
            assert shares._fraction == fraction and list(shares._heard.items()) == heard
        else:
            shares.refresh_from(queued, now, open_of)
    assert skipped > 50  # the shortcut is taken, not only declined


@pytest.mark.parametrize("score", [0.5, 2.0, 9.0])
@pytest.mark.parametrize("others", [0, 2])  # the tenant's only call (it becomes active) or not
def test_requeue_is_push_from_where_the_call_was_queued(score: float, others: int) -> None:
    """A released call goes global with `requeue`: as `push(call, since=call.queued_at)`
    would, its bound kept rather than computed again."""
    states = []
    for use_requeue in (False, True):
        queue = MultiLevelQueue((1.0, 4.0), tenant_weights=WEIGHTS)
        queue.push(_call(90, "b", 0.5), since=0.0)
        queue.fair_share.account("b", 3.0)
        for i in range(others):
            queue.push(_call(i, "a", 0.5), since=float(i), lane="w1")
        call = _call(50, "a", score)
        queue.push(call, since=5.0, lane="w0")
        queue.discard(call)  # released from its home's lane
        if use_requeue:
            queue.requeue(call)
        else:
            queue.push(call, since=call.queued_at)
        q = queue._global["a"]
        states.append((call.queued_at, call.until, call.lane, call.in_queue, len(queue),
                       queue.size_of("a"), queue.global_size_of("a"), q.check_at, q.low,
                       queue._vtime["a"], queue.pop(100.0, lanes=(GLOBAL,)).call_id))
    assert states[0] == states[1]


def _queue_state(queue: MultiLevelQueue) -> tuple[object, ...]:
    lanes = {lane: {t: (q.size, q.low, q.check_at, [[c.call_id for c in level]
                                                      for level in q.levels])
                    for t, q in tenants.items()}
             for lane, tenants in queue._lanes.items()}
    return len(queue), dict(queue._size), dict(queue._vtime), lanes


@pytest.mark.parametrize("seed", range(6))
def test_to_global_is_discard_then_requeue_of_each(seed: int) -> None:
    """Released calls move in one pass (`to_global`) as discarding them all and then
    requeueing them all would: the same lanes, counts, heads' bounds and virtual times,
    a tenant whose last calls move included (then the two steps run)."""
    rng = random.Random(seed)
    for _ in range(40):
        queues = [MultiLevelQueue((1.0, 4.0), tenant_weights=WEIGHTS) for _ in range(2)]
        moved: list[list[CallRecord]] = [[], []]
        plan = [(rng.choice(list(WEIGHTS)), rng.choice((GLOBAL, "w0", "w1")),
                 rng.choice((0.5, 2.0, 9.0)), rng.random() < 0.5) for _ in range(rng.randint(1, 12))]
        for queue, out in zip(queues, moved, strict=True):
            for tenant in WEIGHTS:
                queue.fair_share.account(tenant, random.Random(tenant).choice((0.0, 1.0, 3.0)))
            for i, (tenant, lane, score, move) in enumerate(plan):
                call = _call(i, tenant, score)
                queue.push(call, since=float(i), lane=lane)
                if move and lane != GLOBAL:
                    out.append(call)
        queues[0].to_global(moved[0])
        for call in moved[1]:
            queues[1].discard(call)
        for call in moved[1]:
            queues[1].requeue(call)
        assert _queue_state(queues[0]) == _queue_state(queues[1])
        assert [(c.lane, c.in_queue) for c in moved[0]] == [(c.lane, c.in_queue) for c in moved[1]]
