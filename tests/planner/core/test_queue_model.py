"""The queue's pick, against a plain model of what queue.py documents: seeded random pushes
into lanes (the global one, workers' parked calls), pops (one tenant's or fair share's, of a
lane or of the global lane and a worker's together), cancellations, calls moved to another
lane (a parked call released), calls whose state moves on without a discard, calls pushed
again after a pop, and time passing starvation bounds. The queue drops stale entries lazily
and skips level scans before `check_at`; the model filters every level and looks at every
head on every pop."""

from __future__ import annotations

import random

import pytest

from planner.core.model import CallRecord, CallState
from planner.core.queue import GLOBAL, MultiLevelQueue
from planner.core.starvation import StarvationBound

THRESHOLDS = (1.0, 4.0, 16.0)
TENANTS = ("a", "b", "c")
LANES = (GLOBAL, "w0", "w1")

_Entry = tuple[float, float, CallRecord, int]  # start, until, call, push number


class _Model:
    """Per lane, tenant and level, the entries in push order; a pick filters out the calls
    that no longer wait there and, of every entry left that is its call's latest push, takes
    the one past its bound with the earliest bound (ties: the first pushed), wherever it is
    in its level; else the lowest level's head (the earliest of them)."""

    def __init__(self, queue: MultiLevelQueue) -> None:
        self.queue = queue
        self.levels: dict[tuple[str, str], list[list[_Entry]]] = {
            (lane, t): [[] for _ in range(len(THRESHOLDS) + 1)] for lane in LANES
            for t in TENANTS}
        self.pushes = 0
        self.latest: dict[int, int] = {}  # id(call) -> its latest push's number

    def push(self, call: CallRecord, since: float | None, lane: str = GLOBAL) -> None:
        start = call.arrival if since is None else since
        until = start + self.queue.bound_s(call.score)
        self.pushes += 1
        self.latest[id(call)] = self.pushes
        self.levels[(lane, call.tenant)][self.queue.level_of(call.score)].append(
            (start, until, call, self.pushes))

    def pick(self, tenant: str, now: float, lanes: tuple[str, ...]) -> CallRecord | None:
        heads = []
        starving: list[tuple[float, int, list[_Entry], CallRecord]] = []
        for lane in lanes:
            for i, level in enumerate(self.levels[(lane, tenant)]):
                level[:] = [e for e in level if e[2].in_queue and e[2].lane == lane
                            and e[2].state is CallState.QUEUED]
                if level:
                    heads.append((level[0], i, level))
                starving += [(e[1], e[3], level, e[2]) for e in level
                             if now > e[1] and self.latest[id(e[2])] == e[3]]
        if not heads:
            return None
        if starving:
            # the earliest bound, to the microsecond; then the first pushed
            _, _, level, call = min(starving, key=lambda s: (int(s[0] * 1e6), s[1]))
            level.pop(next(k for k, e in enumerate(level) if e[2] is call))
            return call
        level = min(heads, key=lambda h: (h[1], h[0][0]))[2]
        return level.pop(0)[2]


def _call(n: int, tenant: str, score: float, arrival: float) -> CallRecord:
    return CallRecord(program_id=f"p{n}", call_id="c", tenant=tenant, thread_id="main",
                      parents=(), prompt_tokens=0, max_new_tokens=0, arrival=arrival,
                      score=score)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("moves", [False, True])
@pytest.mark.parametrize("lanes", [False, True])
def test_the_queue_pops_what_the_plain_model_picks(seed: int, moves: bool, lanes: bool) -> None:
    """`moves`: calls' states also move on without a discard (not the planner's way: every
    path that takes a queued call out discards it); the queue then only notices at its
    head, so only the counts are compared."""
    rng = random.Random(seed)
    queue = MultiLevelQueue(THRESHOLDS, starvation=StarvationBound(2.0, 0.5, 5.0))
    model = _Model(queue)
    now, n = 0.0, 0
    queued: list[CallRecord] = []  # pushed, not yet popped or dropped
    popped: list[CallRecord] = []  # may come back (a parked call released)
    moved: list[CallRecord] = []  # state moved on without a discard: counted until dropped
    for _ in range(3000):
        op = rng.random()
        if op < 0.35:
            n += 1
            call = _call(n, rng.choice(TENANTS), rng.uniform(0.0, 30.0), now)
            since = now if rng.random() < 0.5 else None
            lane = rng.choice(LANES) if lanes else GLOBAL
            queue.push(call, since, lane)
            model.push(call, since, lane)
            queued.append(call)
        elif op < 0.42 and popped:
            call = popped.pop(rng.randrange(len(popped)))
            queue.push(call)
            model.push(call, None)
            queued.append(call)
        elif op < 0.45 and queued and lanes:  # moved to another lane (a parked call released)
            call = rng.choice(queued)
            if call.in_queue and call.lane != GLOBAL:
                queue.push(call, call.queued_at)
                model.push(call, call.queued_at)
        elif op < 0.50 and queued:  # cancelled
            call = queued.pop(rng.randrange(len(queued)))
            queue.discard(call)
            call.state = CallState.CANCELLED
        elif op < 0.53 and queued and moves:  # its state moved on without a discard
            call = queued.pop(rng.randrange(len(queued)))
            call.state = CallState.RUNNING
            moved.append(call)
        elif op < 0.63:
            now += rng.choice((0.0, 0.1, 0.4, 1.5, 4.0))
        elif op < 0.68:
            queue.fair_share.account(rng.choice(TENANTS), rng.uniform(0.0, 2.0))
        else:
            tenant = rng.choice((None, *TENANTS))
            pick_lanes = rng.choice(((GLOBAL,), (GLOBAL, "w0"), ("w1",))) if lanes \
                else (GLOBAL,)
            order = [tenant] if tenant is not None else queue.peek_tenants(pick_lanes)
            expected = None
            for t in order:
                if (expected := model.pick(t, now, pick_lanes)) is not None:
                    break
            got = queue.pop(now, tenant, pick_lanes)
            assert got is expected or moves
            if got is not None:
                queued.remove(got)
                popped.append(got)
        counted = [c for c in (*queued, *moved) if c.in_queue]
        assert len(queue) == len(counted) >= len(queued)
        for t in TENANTS:
            assert queue.size_of(t) == sum(1 for c in counted if c.tenant == t)
            for lane in LANES:
                assert queue.size_of(t, lane) == sum(1 for c in counted
                                                     if c.tenant == t and c.lane == lane)
