"""A program's deadline (ostinato/deadlines.py): one rule for the gateway and the planner,
exact to the nanosecond (the planner rounded to microseconds: 500 ns was refused as "not
positive" after the gateway took it)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from ostinato.deadlines import MAX_DEADLINE_S, deadline_seconds

TAKEN = [
    (Duration(nanos=500), 5e-7),
    (Duration(nanos=1), 1e-9),
    (Duration(seconds=1, nanos=1500), 1.0000015),
    (Duration(seconds=30), 30.0),
    (Duration(seconds=MAX_DEADLINE_S), float(MAX_DEADLINE_S)),
]

REFUSED = [
    Duration(),
    Duration(seconds=-1),
    Duration(nanos=-500),
    Duration(seconds=2, nanos=-2_000_000_000),  # nanos out of range (was taken: 0 s)
    Duration(seconds=1, nanos=-1),  # signs differ: no Duration
    Duration(seconds=MAX_DEADLINE_S, nanos=1),
    Duration(seconds=10**14),  # was an OverflowError in the planner (UNKNOWN)
]


@pytest.mark.parametrize(("duration", "seconds"), TAKEN)
def test_a_deadline_is_taken_exactly(duration: Duration, seconds: float) -> None:
    assert deadline_seconds(duration) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize("duration", REFUSED)
def test_what_is_no_deadline_is_refused(duration: Duration) -> None:
    with pytest.raises(ValueError, match=r"^deadline must be positive and at most 31536000 s$"):
        deadline_seconds(duration)
