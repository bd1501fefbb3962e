"""Priority policies: a call's score (lower runs sooner) and the priority passed to the engine.

The global queue (planner/core/queue.py) turns scores into levels by each policy's
thresholds, FIFO within a level, with tenant fair share and anti-starvation on top.
`engine_priority` is SGLang's `priority` (higher runs first); adjacent levels differ by 10,
so with SGLang's default preemption threshold (10) only a gap of two levels preempts.

Scores come in each policy's own unit (seconds of service, work units, seconds of slack);
`score_seconds` converts one to seconds, the unit the queue's anti-starvation bound is in.
"""

from __future__ import annotations

import bisect
from typing import Protocol

from planner.core.model import CallRecord, CallState, DeadlineExceeded, Program

LEVEL_STEP = 10
LATE = 1e12  # the score of a call that can no longer make its deadline (demoted)
# Seconds per work unit (one output token, model.work_of): about one decode step of one
# sequence on the profiled GPUs (50 tokens/s), the same figure Slack assumes.
SECONDS_PER_WORK = 0.02


class PriorityPolicy(Protocol):
    name: str
    thresholds: tuple[float, ...]
    # whether a waiting call's score changes with time alone (slack's): the planner scores
    # it again as it leaves its level (planner/core/aging.py)
    ages: bool

    def score(self, call: CallRecord, program: Program, now: float) -> float: ...

    def score_seconds(self, score: float) -> float:
        """The score as seconds of expected service (anti-starvation, planner/core/queue.py)."""
        ...


def engine_priority(policy: PriorityPolicy, score: float) -> int:
    level = bisect.bisect_right(policy.thresholds, score)
    return (len(policy.thresholds) - level) * LEVEL_STEP


class Fcfs:
    """First come, first served, per call: what serving engines do by default."""

    name = "fcfs"
    ages = False
    thresholds: tuple[float, ...] = ()

    def score(self, call: CallRecord, program: Program, now: float) -> float:
        return 0.0

    def score_seconds(self, score: float) -> float:
        return 0.0  # one level, FIFO: nothing overtakes, nothing starves


class Plas:
    """Autellix PLAS: least attained service of the program first (seconds of engine time)."""

    name = "plas"
    ages = False
    thresholds = (0.25, 1.0, 4.0, 16.0, 64.0)

    def score(self, call: CallRecord, program: Program, now: float) -> float:
        return program.attained_service_s

    def score_seconds(self, score: float) -> float:
        return score


class Atlas:
    """Autellix ATLAS: the critical path so far, max over parents of (parent's + its service).

    Equals PLAS for single-threaded programs; parallel branches are not charged for each
    other's service.
    """

    name = "atlas"
    ages = False
    thresholds = Plas.thresholds

    def score(self, call: CallRecord, program: Program, now: float) -> float:
        return call.critical_path_s

    def score_seconds(self, score: float) -> float:
        return score


class Srpt:
    """Shortest expected remaining program work first, without knowing the future.

    The expected remaining work (tokens, model.work_of) of a program given what it has
    attained is learned per
    program class from programs that ended (ProgramSizeEstimator), so a program of a class
    that runs long (a 156-call tree search) ranks behind a short chat turn from its first
    call, where PLAS and ATLAS see both as new. Without history it is PLAS in work units.
    """

    name = "srpt"
    ages = False
    thresholds = (32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)

    def __init__(self, seconds_per_work: float = SECONDS_PER_WORK) -> None:
        self._spw = seconds_per_work

    def score_seconds(self, score: float) -> float:
        return score * self._spw

    def score(self, call: CallRecord, program: Program, now: float) -> float:
        if program.expected_remaining_work is None:
            return program.attained_work
        return program.expected_remaining_work


class Slack:
    """Least slack first: deadline - now - estimated remaining work of the program.

    A call that can no longer make its program's deadline is demoted to the last level,
    or rejected with DeadlineExceeded if the program asked for that. Calls of programs
    without a deadline share the last level.
    """

    name = "slack"
    ages = True  # deadline - now - work: falls a second per second waited
    thresholds = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0)

    def __init__(self, seconds_per_output_token: float = SECONDS_PER_WORK) -> None:
        self._tpot = seconds_per_output_token

    def score_seconds(self, score: float) -> float:
        """Slack is seconds already; LATE (no deadline, or missed) is effectively unbounded:
        the queue's `max_s` caps it."""
        return score

    def score(self, call: CallRecord, program: Program, now: float) -> float:
        if program.deadline_at is None:
            return LATE
        # The program ends no sooner than this call and its running calls (their estimates
        # refined as they stream, planner/core/estimates.py).
        running = max((c.remaining_output for c in program.calls.values()
                       if c.state is CallState.RUNNING), default=0)
        slack = program.deadline_at - now - max(call.expected_output, running) * self._tpot
        if slack < 0:
            if program.reject_when_late:
                raise DeadlineExceeded(
                    f"program {program.program_id!r} can no longer meet its deadline "
                    f"({slack:.2f}s of slack)")
            return LATE
        return slack


class Clairvoyant:
    """Shortest remaining program first, knowing each program's true remaining work
    (model.work_of: output tokens of its unfinished calls, prompt tokens at 1/50 the cost).

    Not deployable: only the cluster simulator knows the future and passes it as
    `remaining_work`; live calls carry none. Not a bound either: knowing sizes does not make
    a greedy order optimal for latency on batched engines with prefix caches, and `default`
    has beaten it (docs/bench/), so results compare against it, never call it an upper bound.
    """

    name = "clairvoyant"
    ages = False
    thresholds = Srpt.thresholds

    def __init__(self, seconds_per_work: float = SECONDS_PER_WORK) -> None:
        self._spw = seconds_per_work

    def score_seconds(self, score: float) -> float:
        return score * self._spw

    def score(self, call: CallRecord, program: Program, now: float) -> float:
        return call.remaining_work


def priority_policies() -> dict[str, type]:
    """The registry of priority policies, built when asked (no module-global mutable state)."""
    return {"fcfs": Fcfs, "plas": Plas, "atlas": Atlas, "slack": Slack, "srpt": Srpt,
            "clairvoyant": Clairvoyant}
