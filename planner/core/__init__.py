"""The planner's pure core: synchronous, clock-injected, no gRPC, Redis or asyncio."""

from planner.core.model import (
    CallRecord,
    CallState,
    DeadlineExceeded,
    DuplicateCall,
    Grant,
    NoSuchCall,
    Overloaded,
    PlannerError,
    Program,
    ProgramClosed,
    ProgramIdInUse,
    UnknownParent,
    UnknownProgram,
    WorkerState,
)
from planner.core.planner import PlannerCore

__all__ = [
    "CallRecord",
    "CallState",
    "DeadlineExceeded",
    "DuplicateCall",
    "Grant",
    "NoSuchCall",
    "Overloaded",
    "PlannerCore",
    "PlannerError",
    "Program",
    "ProgramClosed",
    "ProgramIdInUse",
    "UnknownParent",
    "UnknownProgram",
    "WorkerState",
]
