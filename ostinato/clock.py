"""Clocks injected into the pure cores (planner, sim engine): they never call time.* themselves."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic timeline."""
        ...


class SystemClock:
    """Wall-clock monotonic time for services."""

    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """Virtual time for tests and the cluster simulator."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._now += seconds

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError("time cannot go backwards")
        self._now = t
