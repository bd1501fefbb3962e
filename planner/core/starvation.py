"""Anti-starvation's bound: how long a queued call may be passed over, in seconds for every
priority policy (planner/core/queue_push.py sets each queued call's bound by it, and
planner/core/starving_calls.py serves the calls past theirs; each policy's `score_seconds`
converts its scores to seconds of expected service)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StarvationBound:
    """How long a queued call may be passed over: `ratio` times its expected service in
    seconds, at least `min_s` and at most `max_s` (seconds). `max_s = inf` and a huge
    ratio turn anti-starvation off."""

    ratio: float = 4.0
    min_s: float = 1.0
    max_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.ratio >= 0 and 0 <= self.min_s <= self.max_s):  # (nan: refused)
            raise ValueError("starvation bound: need ratio >= 0 and 0 <= min_s <= max_s, "
                             f"got {self.ratio}, {self.min_s}, {self.max_s}")

    def wait_s(self, service_s: float) -> float:
        return min(self.max_s, max(self.min_s, self.ratio * service_s))
