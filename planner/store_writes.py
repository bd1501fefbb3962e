"""The records the planner store writes (planner/store.py): one a program's registration,
a call's change or a program's end, read when it is written (its latest state)."""

from __future__ import annotations

from dataclasses import dataclass

from planner.core.model import (
    CallChanged,
    CallRecord,
    Event,
    Program,
    ProgramEnded,
    ProgramRegistered,
)
from planner.records import call_json, program_fields


@dataclass(frozen=True)
class Write:
    """A record to write, read when it is written (its latest state): a record changed
    again while its write waits is written once."""

    kind: str  # "program" | "call" | "ended"
    program_id: str
    tenant: str
    record: Program | CallRecord
    wall: float  # wall and planner clock at the change: clock times are written as wall times
    clock: float
    fresh: bool = False  # a program's: a new run of its id (ProgramRegistered.fresh)

    @property
    def key(self) -> tuple[str, ...]:
        """The record written: a newer write of the same key replaces a waiting one."""
        if isinstance(self.record, CallRecord):
            return ("call", self.program_id, self.record.call_id)
        return (self.kind, self.program_id)

    def fields(self) -> dict[str, str]:
        r = self.record
        if isinstance(r, CallRecord):
            return {r.call_id: call_json(r, self.wall, self.clock)}
        if self.kind == "program":
            return program_fields(r, self.wall, self.clock)
        return {"state": "ended", "ended_wall": f"{self.wall:.6f}",
                "attained_service_s": f"{r.attained_service_s:.6f}", "calls": str(len(r.calls))}


def snapshot(event: Event, wall_now: float, clock_now: float) -> Write:
    """The write an event asks for (its fields are read when written)."""
    if isinstance(event, ProgramRegistered):
        p = event.program
        return Write("program", p.program_id, p.tenant, p, wall_now, clock_now, event.fresh)
    if isinstance(event, CallChanged):
        c = event.call
        return Write("call", c.program_id, c.tenant, c, wall_now, clock_now)
    if isinstance(event, ProgramEnded):
        p = event.program
        return Write("ended", p.program_id, p.tenant, p, wall_now, clock_now)
    raise TypeError(f"unknown event {event!r}")
