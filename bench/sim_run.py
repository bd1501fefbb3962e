"""What a cluster simulation run records (bench/cluster.py): each call's timeline, each
program's outcome, the run as a whole, and the steady-state window it measures."""

from __future__ import annotations

from dataclasses import dataclass

from bench.programs import ProgramPlan


@dataclass(frozen=True)
class SteadyState:
    """Programs arriving in [window[0], window[1]) are measured; the run stops when they have
    all finished, or at `horizon` (simulated seconds)."""

    window: tuple[float, float]
    horizon: float

    def __post_init__(self) -> None:
        if not 0 <= self.window[0] < self.window[1] <= self.horizon:
            raise ValueError(f"need 0 <= window start < window end <= horizon, got "
                             f"{self.window} and {self.horizon}")

    def measures(self, arrival: float) -> bool:
        return self.window[0] <= arrival < self.window[1]


@dataclass(slots=True)
class CallTimeline:
    program: int
    call: int
    ready: float  # submitted to the planner
    dispatched: float = -1.0
    first_token: float = -1.0
    finished: float = -1.0
    worker: int = -1
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    failed: bool = False


@dataclass(slots=True)
class ProgramOutcome:
    plan: ProgramPlan
    finished: float = -1.0  # virtual time the last call finished; -1: not (by the end)
    failed_calls: int = 0
    measured: bool = True  # a finite run measures every program


@dataclass
class SimRun:
    outcomes: list[ProgramOutcome]  # every program that arrived
    calls: list[CallTimeline]
    simulated_s: float  # when the run ended
    wall_s: float
    engine_busy_s: list[float]
    steady: SteadyState | None = None
    cpu_s: float = 0.0  # the run's process CPU time (a shared machine's wall time varies)
