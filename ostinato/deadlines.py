"""A program's deadline as the API carries it (a protobuf Duration, ProgramOptions.deadline):
one rule for the gateway, which checks what clients send, and the planner, whose RPCs are
reachable too, so that neither takes what the other refuses."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

MAX_DEADLINE_S = 365 * 86_400  # a program deadline beyond a year is refused


def deadline_seconds(d: Duration) -> float:
    """The deadline in seconds, exactly (not rounded to microseconds: 500 ns is a deadline,
    already late, not zero); ValueError for a Duration that is not one (nanos out of range or
    of the other sign than seconds), not above 0, or beyond MAX_DEADLINE_S."""
    nanos = d.seconds * 1_000_000_000 + d.nanos  # compared exactly, in integers
    if (not -999_999_999 <= d.nanos <= 999_999_999 or (d.seconds > 0 > d.nanos)
            or (d.seconds < 0 < d.nanos) or not 0 < nanos <= MAX_DEADLINE_S * 1_000_000_000):
        raise ValueError(f"deadline must be positive and at most {MAX_DEADLINE_S} s")
    return d.seconds + d.nanos / 1e9
