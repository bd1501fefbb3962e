"""Priority policies: which queued call runs next. A policy is a small plugin.

`sort_key` orders the global queue (lower first); `engine_priority` is what the
engine receives as SGLang `priority` (higher runs first there).
"""

from __future__ import annotations

from typing import Protocol

from planner.core.model import CallRecord, Program


class PriorityPolicy(Protocol):
    name: str

    def sort_key(self, call: CallRecord, program: Program, now: float) -> float: ...

    def engine_priority(self, call: CallRecord, program: Program, now: float) -> int: ...


class Fcfs:
    """First come, first served, per call: what serving engines do by default."""

    name = "fcfs"

    def sort_key(self, call: CallRecord, program: Program, now: float) -> float:
        return call.arrival

    def engine_priority(self, call: CallRecord, program: Program, now: float) -> int:
        return 0


def priority_policies() -> dict[str, type]:
    """The registry of priority policies, built when asked (no module-global mutable state)."""
    return {"fcfs": Fcfs}
