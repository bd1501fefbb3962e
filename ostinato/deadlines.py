"""Deadlines. A program's deadline as the API carries it (a protobuf Duration,
ProgramOptions.deadline): one rule for the gateway, which checks what clients send, and the
planner, whose RPCs are reachable too, so that neither takes what the other refuses. And
when a stopped call counts as cut by its deadline (every service alike)."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

MAX_DEADLINE_S = 365 * 86_400  # a program deadline beyond a year is refused
# A call stopped this close to its time limit was cut by its deadline (which gRPC enforces
# by cancelling the handler, and the gateway by cancelling the worker's generation), not by
# its caller: counted DEADLINE_EXCEEDED, not cancelled, at the gateway, the planner and the
# worker alike (tracing review 2026-12-05 F5).
DEADLINE_SLACK_S = 0.1


def cut_by_deadline(elapsed_s: float, limit_s: float | None) -> bool:
    """Whether a call stopped after `elapsed_s` of its `limit_s` (None: no limit) was cut
    by its deadline rather than by its caller."""
    return limit_s is not None and elapsed_s >= limit_s - DEADLINE_SLACK_S


def deadline_seconds(d: Duration) -> float:
    """The deadline in seconds, exactly (not rounded to microseconds: 500 ns is a deadline,
    already late, not zero); ValueError for a Duration that is not one (nanos out of range or
    of the other sign than seconds), not above 0, or beyond MAX_DEADLINE_S."""
    nanos = d.seconds * 1_000_000_000 + d.nanos  # compared exactly, in integers
    if (not -999_999_999 <= d.nanos <= 999_999_999 or (d.seconds > 0 > d.nanos)
            or (d.seconds < 0 < d.nanos) or not 0 < nanos <= MAX_DEADLINE_S * 1_000_000_000):
        raise ValueError(f"deadline must be positive and at most {MAX_DEADLINE_S} s")
    return d.seconds + d.nanos / 1e9
