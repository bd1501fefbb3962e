"""Waiting calls scored again as time passes (a mixin of PlannerCore): refused when their
program's deadline can no longer be met, and, under a policy whose scores age (`slack`),
moved to the level their score has reached (planner/core/aging.py)."""

from __future__ import annotations

from collections.abc import Callable

from planner.core.aging import LevelCrossings
from planner.core.model import CallRecord, CallState, DeadlineExceeded, Program
from planner.core.parking import ParkedCalls
from planner.core.queue import MultiLevelQueue


class LateCalls:
    _programs: dict[str, Program]
    _queue: MultiLevelQueue
    _parked: ParkedCalls
    _crossings: LevelCrossings | None  # the policy's scores age: when calls leave levels
    _finish: Callable[..., None]  # PlannerCore's: ends a call (refused: why it never started)
    # PlannerCore's: a call's priority score; DeadlineExceeded where it would be refused
    _score: Callable[[CallRecord, Program, float], float]

    def _refused_late(self, call: CallRecord, now: float) -> bool:
        """Whether a call popped for a program that asked for it (reject_when_late) is
        refused (FAILED, its caller told DEADLINE_EXCEEDED) as it would be if it came now:
        past the deadline under every policy, and under `slack` once its slack has run out
        (planner review 2026-12-06 F4: one queued with slack to spare ran when its turn
        came too late to meet the deadline)."""
        return self._programs[call.program_id].deadline_at is not None \
            and self._rescore(call, now) is None

    def _rescore(self, call: CallRecord, now: float) -> float | None:
        """The call's score as of `now`; None if that refused it (finished FAILED)."""
        try:
            return self._score(call, self._programs[call.program_id], now)
        except DeadlineExceeded as exc:
            self._finish(call, CallState.FAILED, exc)
            return None

    def _watch(self, call: CallRecord, now: float) -> None:
        """A call just filed, scored as of `now`: noted for when its score leaves its level."""
        if self._crossings is not None:
            self._crossings.watch(call, now, len(self._queue))

    def _age(self, now: float) -> None:
        """Calls whose aging scores have left their levels by `now` move to the levels they
        have reached (at the end), keeping their place in the starvation bound; late ones
        are demoted, or refused if their programs asked for that."""
        crossings = self._crossings
        if crossings is None or crossings.next_at() > now:
            return
        queue = self._queue
        for call in crossings.due(now):
            if not call.in_queue:
                continue
            score = self._rescore(call, now)
            if score is not None:
                level = queue.level_of(call.score)
                queue.relevel(call, score)
                if call.parked and queue.level_of(score) != level:
                    self._parked.relevel(call, queue.level_of(score))
                crossings.watch(call, now, len(queue))
