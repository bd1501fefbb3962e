"""The lease state machine (planner/lease.py), table-driven on virtual time: what a planner
does next, and whether it may serve, after each answer from Redis."""

from __future__ import annotations

import pytest

from planner.lease import Due, Lease, LeaseTiming, Role, Step

TIMING = LeaseTiming(ttl_s=10.0, renew_s=2.0, margin_s=1.0)  # valid 9 s after a send

# Each case: events (time, what happened), then (time, expected role, may serve, next step).
# Events: "acquired:<token>", "refused", "renewed", "failed", "depose".
CASES = {
    "a standby tries at once, then every renew_s after a refusal": (
        [(0.0, "refused")],
        [(0.0, Role.STANDBY, False, Due(Step.WAIT, 2.0)), (2.0, Role.STANDBY, False,
                                                          Due(Step.ACQUIRE, 2.0))],
    ),
    "acquiring makes it active with the token, renewing every renew_s": (
        [(0.0, "acquired:7")],
        [(1.0, Role.ACTIVE, True, Due(Step.WAIT, 2.0)), (2.0, Role.ACTIVE, True,
                                                        Due(Step.RENEW, 2.0))],
    ),
    "validity counts from when the request was sent, less the margin": (
        [(0.0, "acquired:1")],
        [(8.99, Role.ACTIVE, True, Due(Step.RENEW, 8.99)), (9.0, Role.LOST, False,
                                                           Due(Step.STOP, 9.0))],
    ),
    "a renewal extends validity from its own send time": (
        [(0.0, "acquired:1"), (2.0, "renewed")],
        [(10.99, Role.ACTIVE, True, Due(Step.RENEW, 10.99)), (11.0, Role.LOST, False,
                                                             Due(Step.STOP, 11.0))],
    ),
    "a refused renewal ends the term at once": (
        [(0.0, "acquired:1"), (2.0, "refused")],
        [(2.0, Role.LOST, False, Due(Step.STOP, 2.0))],
    ),
    "redis silent: the active keeps serving while valid and retries soon": (
        [(0.0, "acquired:1"), (2.0, "failed")],
        [(2.1, Role.ACTIVE, True, Due(Step.WAIT, 2.5)), (2.5, Role.ACTIVE, True,
                                                        Due(Step.RENEW, 2.5))],
    ),
    "redis silent past validity: lost, even with a retry pending": (
        [(0.0, "acquired:1"), (2.0, "failed"), (2.5, "failed"), (8.9, "failed")],
        [(8.95, Role.ACTIVE, True, Due(Step.WAIT, 9.0)), (9.0, Role.LOST, False,
                                                         Due(Step.STOP, 9.0))],
    ),
    "a wait never outlasts validity": (
        [(0.0, "acquired:1"), (8.5, "failed")],
        [(8.6, Role.ACTIVE, True, Due(Step.WAIT, 9.0))],
    ),
    "a renewal answered after validity ended does not revive the term": (
        [(0.0, "acquired:1"), (9.5, "renewed")],
        [(9.6, Role.LOST, False, Due(Step.STOP, 9.6))],
    ),
    "a standby that cannot reach redis tries again in renew_s": (
        [(0.0, "failed")],
        [(1.0, Role.STANDBY, False, Due(Step.WAIT, 2.0))],
    ),
    "deposed (a fenced write refused): never serves again": (
        [(0.0, "acquired:3"), (1.0, "depose"), (1.5, "renewed")],
        [(1.5, Role.LOST, False, Due(Step.STOP, 1.5))],
    ),
}


def _apply(lease: Lease, t: float, event: str) -> None:
    kind, _, arg = event.partition(":")
    if kind == "acquired":
        lease.acquired(t, int(arg))
    elif kind == "depose":
        lease.depose("test")
    else:
        getattr(lease, kind)(t)


@pytest.mark.parametrize("name", list(CASES))
def test_lease_state_machine(name: str) -> None:
    events, checks = CASES[name]
    lease = Lease(TIMING, now=0.0)
    for t, event in events:
        _apply(lease, t, event)
    for t, role, serves, due in checks:
        assert lease.holds(t) is serves, (name, t)
        assert lease.due(t) == due, (name, t)
        assert lease.role is role, (name, t)


def test_the_token_is_the_one_acquired() -> None:
    lease = Lease(TIMING, now=0.0)
    assert lease.token is None
    lease.acquired(0.0, 42)
    assert lease.token == 42


def test_acquiring_twice_is_a_bug() -> None:
    lease = Lease(TIMING, now=0.0)
    lease.acquired(0.0, 1)
    with pytest.raises(RuntimeError):
        lease.acquired(1.0, 2)


@pytest.mark.parametrize(("ttl", "renew", "margin"), [(1.0, 1.0, 0.0), (1.0, 0.5, 0.5),
                                                      (0.0, 0.1, 0.0), (1.0, 0.1, -0.1)])
def test_timings_that_would_lapse_between_renewals_are_refused(
        ttl: float, renew: float, margin: float) -> None:
    with pytest.raises(ValueError):
        LeaseTiming(ttl, renew, margin)


def test_default_margin_is_a_tenth_of_the_ttl() -> None:
    assert LeaseTiming.of(5.0, 1.0) == LeaseTiming(5.0, 1.0, 0.5)
