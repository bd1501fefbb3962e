"""Anti-starvation in seconds under every priority policy: table-driven, in virtual time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ostinato.clock import ManualClock
from planner.core import CallRecord, PlannerCore
from planner.core.policies import LATE, priority_policies
from planner.core.queue import MultiLevelQueue
from planner.core.selection import parse_policy
from planner.core.starvation import StarvationBound

STEP_S = 0.5  # one call finishes and one fresh call arrives every step


def _worst_call(policy: str, size: float | None, core: PlannerCore,
                clock: ManualClock) -> CallRecord:
    """A call of a program of `size` (the policy's own measure; slack: its deadline, None
    for none), queued now."""
    core.register_program("big", "t", deadline_s=size if policy == "slack" else None)
    size = size or 0.0
    if policy in ("plas", "atlas", "srpt"):
        core.submit("big", "t", "history")
        assert [g.call_id for g in core.dispatch()] == ["history"]
        if policy == "srpt":  # attained work: tokens
            core.complete("big", "history", completion_tokens=int(size))
        else:  # seconds of service (it ran that long)
            clock.advance(size)
            core.complete("big", "history", service_s=size)
        parents = ["history"] if policy == "atlas" else []
        return core.submit("big", "t", "W", parents=parents)
    if policy == "clairvoyant":
        return core.submit("big", "t", "W", remaining_work=size)
    return core.submit("big", "t", "W", expected_output=50)  # slack: 1 s of decoding


def _fresh_call(core: PlannerCore, i: int) -> None:
    """A new program's first call: the best level under every policy."""
    core.register_program(f"f{i}", "t", deadline_s=3.0)
    core.submit(f"f{i}", "t", "c", expected_output=50, remaining_work=1.0)


def _dispatch_time_of_worst(policy: str, size: float | None) -> tuple[float, float]:
    """One engine, one call at a time, a fresh call always queued (each waits STEP_S
    before it runs, under the 1 s floor). Returns (bound, when W started, after queueing)."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(f"{policy}+round_robin"))
    core.upsert_worker("w0", "a0", 1)
    w = _worst_call(policy, size, core, clock)
    bound = core._queue.bound_s(w.score)
    t0 = clock.now()
    _fresh_call(core, 0)
    running = None
    for i in range(1, 10_000):
        grants = core.dispatch()
        if grants:
            assert len(grants) == 1
            running = grants[0]
            if running.call_id == "W":
                return bound, clock.now() - t0
        _fresh_call(core, i)
        clock.advance(STEP_S)
        assert running is not None
        core.complete(running.program_id, running.call_id, service_s=STEP_S)
    raise AssertionError("W never ran")


@pytest.mark.parametrize(
    ("policy", "size", "bound"),
    [
        # (policy, the worst program's size in the policy's unit, its bound in seconds)
        ("plas", 5.0, 20.0),  # 5 s attained: 4 x 5 s
        ("plas", 100.0, 60.0),  # last level: capped at a minute
        ("atlas", 5.0, 20.0),
        ("atlas", 1000.0, 60.0),
        ("srpt", 200.0, 16.0),  # 200 tokens x 0.02 s x 4
        ("srpt", 50_000.0, 60.0),  # last level (>= 16384 tokens): capped, not 4000 s
        ("clairvoyant", 200.0, 16.0),
        ("clairvoyant", 1e6, 60.0),
        ("slack", None, 60.0),  # no deadline: LATE (1e12), capped
    ],
)
def test_a_worst_level_call_is_promoted_after_its_bound_in_seconds_and_not_before(
        policy: str, size: float | None, bound: float) -> None:
    got_bound, started_after = _dispatch_time_of_worst(policy, size)
    assert got_bound == pytest.approx(bound)
    # Passed over while within its bound; run at the first decision past it.
    assert bound < started_after <= bound + STEP_S


def test_under_slack_a_waiting_calls_slack_ages_and_it_runs_once_it_is_among_the_least() -> None:
    """W (deadline 11 s, 1 s of decoding: 10 s of slack when queued, a bound of 4 x 10 s)
    against fresh calls that come with 2 s of slack: its slack falls a second per second
    waited, and it runs once it is as small as theirs (about 8 s on), not at its bound
    (planner review 2026-12-06 F3: scored once, it kept its 10 s and waited out the 40)."""
    got_bound, started_after = _dispatch_time_of_worst("slack", 11.0)
    assert got_bound == pytest.approx(40.0)
    assert 8.0 <= started_after <= 8.0 + 2 * STEP_S


@pytest.mark.parametrize("policy", sorted(priority_policies()))
@pytest.mark.parametrize("score_of", [
    lambda th: 0.0,
    lambda th: th[-1] if th else 0.0,  # the last level
    lambda th: 1e9,
    lambda th: LATE,
])
def test_every_policys_bound_is_finite_and_at_most_a_minute(
        policy: str, score_of: Callable[[tuple[float, ...]], float]) -> None:
    prio = priority_policies()[policy]()
    queue = MultiLevelQueue(prio.thresholds, score_seconds=prio.score_seconds)
    bound = queue.bound_s(score_of(prio.thresholds))
    assert 1.0 <= bound <= 60.0


@pytest.mark.parametrize(
    ("policy", "score", "bound"),
    [
        ("fcfs", 0.0, 1.0),  # one level: the floor, never needed
        ("plas", 0.0, 1.0),  # a new program: the floor
        ("plas", 2.0, 8.0),
        ("atlas", 2.0, 8.0),
        ("srpt", 32.0, 2.56),  # the first threshold: 0.64 s of decoding
        ("srpt", 16384.0, 60.0),
        ("clairvoyant", 500.0, 40.0),
        ("slack", 1.0, 4.0),
        ("slack", LATE, 60.0),
    ],
)
def test_bound_table(policy: str, score: float, bound: float) -> None:
    prio = priority_policies()[policy]()
    queue = MultiLevelQueue(prio.thresholds, score_seconds=prio.score_seconds)
    assert queue.bound_s(score) == pytest.approx(bound)


def _queued(name: str, score: float, tenant: str = "t") -> CallRecord:
    call = CallRecord(program_id=name, call_id="c", tenant=tenant, thread_id="main", parents=(),
                      prompt_tokens=0, max_new_tokens=0, arrival=0.0)
    call.score = score
    return call


@pytest.mark.parametrize(
    ("pushed", "now", "order"),
    [
        # (name, PLAS score, entered the queue at): bounds 60 s (100), 20 s (5), 1 s (0)
        # nothing starving: by level
        ([("big", 100.0, 0.0), ("mid", 5.0, 0.0), ("new", 0.0, 0.0)], 0.5,
         ["new", "mid", "big"]),
        # mid passed its bound, big not: mid first, then the levels
        ([("big", 100.0, 0.0), ("mid", 5.0, 0.0), ("new", 0.0, 20.0)], 20.5,
         ["mid", "new", "big"]),
        # both starving: the one whose bound passed first (mid's at 30 s, big's at 60 s),
        # not the one waiting longest, even from a worse level
        ([("big", 100.0, 0.0), ("mid", 5.0, 10.0), ("new", 0.0, 70.0)], 70.5,
         ["mid", "big", "new"]),
        ([("big", 100.0, 0.0), ("mid", 5.0, 45.0), ("new", 0.0, 70.0)], 70.5,
         ["big", "mid", "new"]),
        ([("big", 100.0, 10.0), ("mid", 5.0, 0.0), ("new", 0.0, 70.5)], 71.0,
         ["mid", "big", "new"]),
        # same bound: the first pushed
        ([("b", 5.0, 0.0), ("a", 5.0, 0.0), ("new", 0.0, 70.0)], 70.5, ["b", "a", "new"]),
    ],
)
def test_earliest_bound_first_among_starving_calls(pushed: list[tuple[str, float, float]], now: float,
                                   order: list[str]) -> None:
    prio = priority_policies()["plas"]()
    queue = MultiLevelQueue(prio.thresholds, score_seconds=prio.score_seconds)
    for name, score, since in pushed:
        queue.push(_queued(name, score), since=since)
    got = []
    while (call := queue.pop(now)) is not None:
        got.append(call.program_id)
    assert got == order


def _same_level_scores(policy: str) -> tuple[float, float]:
    """Two scores of one level of the policy's whose bounds differ: (short, long)."""
    prio = priority_policies()[policy]()
    queue = MultiLevelQueue(prio.thresholds, score_seconds=prio.score_seconds)
    for lo, hi in zip(prio.thresholds, prio.thresholds[1:], strict=False):
        short, long = lo, lo + 0.99 * (hi - lo)
        if queue.bound_s(long) > 1.5 * queue.bound_s(short):
            return short, long
    raise AssertionError(f"{policy}: no level whose bounds differ")


@pytest.mark.parametrize("policy", ["plas", "atlas", "srpt", "clairvoyant", "slack"])
def test_a_call_behind_a_head_with_a_longer_bound_is_promoted_at_its_own(policy: str) -> None:
    """Planner review 2026-12-05 F7: C, queued just behind H in H's level, with a shorter
    bound, while a fresh call (the best level) is always queued: C runs at the first pop
    past its own bound, not once H's passes (up to 4x later, looking at level heads only)."""
    prio = priority_policies()[policy]()
    queue = MultiLevelQueue(prio.thresholds, score_seconds=prio.score_seconds)
    short, long = _same_level_scores(policy)
    assert queue.level_of(short) == queue.level_of(long) > queue.level_of(-1.0)
    queue.push(_queued("H", long), since=0.0)
    queue.push(_queued("C", short), since=0.1)
    c_bound = queue.bound_s(short)
    now, n = 0.0, 0
    while True:
        n += 1
        queue.push(_queued(f"fresh{n}", -1.0), since=now)  # always one waiting, level 0
        got = queue.pop(now)
        assert got is not None
        if got.program_id == "C":
            break
        assert got.program_id != "H", "H, the longer bound, ran first"
        now += 0.25
    assert 0.1 + c_bound < now <= 0.1 + c_bound + 0.25


def test_the_wait_counts_from_entering_the_queue_not_from_a_blocked_submission() -> None:
    """A call submitted with an unfinished parent is not promoted for the time it was
    blocked: its bound starts when its parent finishes."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy("plas+round_robin"))
    core.upsert_worker("w0", "a0", 1)
    core.register_program("p", "t")
    core.submit("p", "t", "parent")
    core.dispatch()
    core.submit("p", "t", "child", parents=["parent"])
    core.register_program("q", "t")
    core.submit("q", "t", "busy")  # holds the engine after the parent
    clock.advance(100.0)
    core.complete("p", "parent", service_s=100.0)  # child: score 100, bound 60 s
    assert [g.call_id for g in core.dispatch()] == ["busy"]
    core.register_program("n", "t")
    core.submit("n", "t", "new")
    clock.advance(1.0)
    core.complete("q", "busy", service_s=1.0)
    # The child waited 101 s since submission but only 1 s in the queue: the new call first.
    assert [g.program_id for g in core.dispatch()] == ["n"]


@pytest.mark.parametrize(
    ("ratio", "min_s", "max_s"),
    [(-1.0, 1.0, 60.0), (4.0, -1.0, 60.0), (4.0, 10.0, 5.0)],
)
def test_bad_bounds_are_refused(ratio: float, min_s: float, max_s: float) -> None:
    with pytest.raises(ValueError, match="starvation bound"):
        StarvationBound(ratio, min_s, max_s)
