"""RedisOutage: after a failure Redis is skipped for a while, then tried again; an outage's
start and end are told once (table-driven over a fake clock)."""

from __future__ import annotations

import pytest

from cache.outage import RedisOutage, outage_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# steps: ("fail" | "ok" | "skip?" | "wait S"), and what each answers
@pytest.mark.parametrize("steps", [
    # up: nothing skipped
    [("skip?", False), ("ok", False), ("skip?", False)],
    # a failure begins an outage; the next operations within a second are not sent
    [("fail", True), ("skip?", True), ("wait 0.5", None), ("skip?", True)],
    # a second on, one is tried again: a failure then goes on with the outage (not told again)
    [("fail", True), ("wait 1.0", None), ("skip?", False), ("fail", False), ("skip?", True)],
    # ... a success ends it (told once) and nothing is skipped after
    [("fail", True), ("wait 1.0", None), ("skip?", False), ("ok", True), ("ok", False),
     ("skip?", False)],
])
def test_an_outage_skips_redis_then_tries_it_again(steps: list) -> None:
    clock = Clock()
    outage = RedisOutage(retry_s=1.0, clock=clock)
    skipped = 0
    for step, expected in steps:
        if step.startswith("wait"):
            clock.now += float(step.split()[1])
            continue
        got = {"fail": outage.failed, "ok": outage.succeeded, "skip?": outage.skip}[step]()
        skipped += step == "skip?" and got
        assert got is expected, step
    assert outage.skipped == skipped


@pytest.mark.parametrize(("first", "then", "down"), [
    # an operation sent before the outage began answers after it: it does not end it
    ("fail", "ok", True),
    # one sent before Redis came back fails after it: it does not begin another outage
    ("ok", "fail", False),
])
def test_a_result_older_than_the_last_change_changes_nothing(first: str, then: str,
                                                            down: bool) -> None:
    clock = Clock()
    outage = RedisOutage(retry_s=1.0, clock=clock)
    if first == "ok":  # an outage that has ended
        outage.failed(clock())
        clock.now += 1.0
    started = clock()  # the stale operation is sent
    clock.now += 0.1
    assert (outage.failed(clock()) if first == "fail" else outage.succeeded(clock())) is True
    clock.now += 0.1
    assert (outage.succeeded(started) if then == "ok" else outage.failed(started)) is False
    assert outage.down is down


def test_one_view_per_client() -> None:
    a, b = object.__new__(Clock), object.__new__(Clock)
    assert outage_of(a) is outage_of(a) and outage_of(a) is not outage_of(b)
