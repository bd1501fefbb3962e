"""The core's constructors refuse nan (and values below their range) for their numbers
(review F12: `nan < 0` is False, so nan passed every check; starvation_max_s = nan passed
a call over for good). inf stays what it was: "never" for a period, "off" for a bound.
Pure."""

from __future__ import annotations

import math

import pytest

from ostinato.clock import ManualClock
from planner.core import PlannerCore
from planner.core.parking import ParkedCalls
from planner.core.queue import MultiLevelQueue
from planner.core.selection import parse_policy
from planner.core.starvation import StarvationBound

ARGUMENTS = ["worker_ttl_s", "program_idle_ttl_s", "declared_idle_ttl_s", "orphan_ttl_s",
             "program_kv_idle_s",
             "conversation_kv_idle_s", "unstarted_grant_s", "starvation_ratio",
             "starvation_min_s", "starvation_max_s", "max_home_wait_s", "isolation_fraction",
             "program_kv_fraction"]


def _core(**kw: float) -> PlannerCore:
    return PlannerCore(ManualClock(), *parse_policy("plas+least_load"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ARGUMENTS)
@pytest.mark.parametrize("value", [math.nan, -1.0])
def test_the_core_refuses_nan_and_negatives(name: str, value: float) -> None:
    with pytest.raises(ValueError):
        _core(**{name: value})


@pytest.mark.parametrize("name", ["worker_ttl_s", "program_idle_ttl_s", "orphan_ttl_s",
                                  "starvation_max_s", "max_home_wait_s"])
def test_inf_is_never_or_off(name: str) -> None:
    _core(**{name: math.inf})


@pytest.mark.parametrize(("ratio", "min_s", "max_s"), [
    (math.nan, 1.0, 60.0), (4.0, math.nan, 60.0), (4.0, 1.0, math.nan), (4.0, 2.0, 1.0),
    (-1.0, 1.0, 60.0),
])
def test_a_starvation_bound_refuses_nan_and_a_reversed_range(ratio: float, min_s: float,
                                                             max_s: float) -> None:
    with pytest.raises(ValueError, match="starvation bound"):
        StarvationBound(ratio, min_s, max_s)


def test_parking_refuses_a_nan_wait() -> None:
    with pytest.raises(ValueError, match="max_wait_s"):
        ParkedCalls(math.nan, MultiLevelQueue((1.0,)))
