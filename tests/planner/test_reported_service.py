"""A worker's reported service time is held to what is plausible: non-finite is 0 at the
service, and the core holds it to [0, the time since its grant + SERVICE_SLACK_S] (review F2:
one report of inf or 1e308 took fair share between tenants away for good). Clock-injected;
the servicer's translation without a server."""

from __future__ import annotations

import math

import pytest

from ostinato.clock import ManualClock
from ostinato.v1 import common_pb2, planner_pb2
from planner.core import PlannerCore
from planner.core.reports import SERVICE_SLACK_S
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore

RAN_S = 2.0  # how long the call ran on the planner's clock


def _ran(policy: str = "plas+round_robin") -> tuple[PlannerCore, ManualClock]:
    """Tenants a, b, c with a program each; a's call x ran RAN_S."""
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy))
    core.upsert_worker("w0", "addr0", 1)
    for t in ("a", "b", "c"):
        core.register_program("p" + t, t)
    core.submit("pa", "a", "x")
    core.dispatch()
    clock.advance(RAN_S)
    return core, clock


@pytest.mark.parametrize(("reported", "taken"), [
    (1.5, 1.5),
    (RAN_S, RAN_S),
    (RAN_S + SERVICE_SLACK_S, RAN_S + SERVICE_SLACK_S),  # within the slack
    (RAN_S + SERVICE_SLACK_S + 0.5, RAN_S + SERVICE_SLACK_S),
    (1e308, RAN_S + SERVICE_SLACK_S),
    (math.inf, RAN_S + SERVICE_SLACK_S),
    (math.nan, 0.0),
    (-1.0, 0.0),
    (-math.inf, 0.0),
])
def test_the_core_holds_a_reported_service_to_the_time_since_its_grant(
        reported: float, taken: float) -> None:
    core, _ = _ran()
    call = core.complete("pa", "x", service_s=reported)
    assert call.service_s == taken
    assert core.program("pa", "a").attained_service_s == taken
    vtime = core._queue.fair_share.vtime
    core.submit("pa", "a", "y")  # a alone in the queue
    core.submit("pb", "b", "y")  # b activates at the least active virtual time
    assert vtime == {"a": taken, "b": taken}  # finite: fair share goes on between them


@pytest.mark.parametrize("reported", [math.inf, -math.inf, math.nan])
def test_the_service_takes_a_non_finite_service_as_0(reported: float) -> None:
    core, clock = _ran()
    service = PlannerService(core, NoStore(), clock)  # type: ignore[arg-type]
    service._complete(planner_pb2.CompletionReport(
        program_id="pa", call_id="x", worker_id="w0", attempt=1, service_s=reported,
        status=planner_pb2.COMPLETION_STATUS_OK, usage=common_pb2.Usage(completion_tokens=3)))
    assert core.program("pa", "a").calls["x"].service_s == 0.0
