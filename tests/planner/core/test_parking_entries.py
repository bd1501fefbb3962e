"""A parked call's entry is its record (planner/core/parking.py): no tuple per parking. The
orders drop an entry lazily once its call stopped waiting, wherever they meet it; the calls
still parked come out as they went in, oldest first, and a worker's are found by their
lane."""

from __future__ import annotations

import gc

import pytest

from planner.core.model import CallRecord
from planner.core.parking import ParkedCalls
from planner.core.queue import MultiLevelQueue


def _call(cid: str, arrival: float, tenant: str = "t") -> CallRecord:
    return CallRecord("p", cid, tenant, "main", (), 10, 4, arrival, score=0.5)


def _parked(calls: dict[str, tuple[str, float]]) -> tuple[ParkedCalls, dict[str, CallRecord]]:
    parked = ParkedCalls(2.0, MultiLevelQueue((1.0, 4.0)))
    records = {}
    for cid, (worker, at) in calls.items():
        records[cid] = call = _call(cid, at)
        parked.park(call, worker, now=at, since=at)
    return parked, records


@pytest.mark.parametrize(("forgotten", "now", "released"), [
    ((), 3.0, ["a", "b"]),  # parked 2 s or longer at 3.0: a (1.0) and b (1.0)
    (("a",), 3.0, ["b"]),  # a started: its entry is dropped, b still comes out
    (("a", "b"), 3.0, []),
    (("a",), 4.0, ["b", "c"]),
    (("c",), 10.0, ["a", "b", "d"]),  # a stale entry between live ones changes no order
])
def test_released_oldest_first_and_stale_entries_dropped(forgotten: tuple[str, ...],
                                                          now: float, released: list[str]) -> None:
    parked, calls = _parked({"a": ("w0", 1.0), "b": ("w1", 1.0), "c": ("w0", 2.0),
                             "d": ("w1", 3.0)})
    for cid in forgotten:
        parked.forget(calls[cid])
    assert [c.call_id for c in parked.release_expired(now)] == released
    assert len(parked) == 4 - len(forgotten) - len(released)
    assert parked.expired(now + 100.0) is bool(len(parked))


def test_a_workers_parked_calls_are_found_by_their_lane_and_counted_down() -> None:
    parked, _ = _parked({"a": ("w0", 1.0), "b": ("w1", 1.0), "c": ("w0", 2.0)})
    assert parked.count_on("w0", "t") == 2 and parked.size_of("t") == 3
    assert sorted(c.call_id for c in parked.release_worker("w0")) == ["a", "c"]
    assert parked.count_on("w0", "t") == 0 and parked.size_of("t") == 1
    assert parked.counts() == {("w1", "t"): 1} and not parked.waiting_on("w0")


def test_parking_leaves_no_tracked_tuple_per_call() -> None:
    """No container per parked call that the collector keeps walking while the call waits
    (the queue's starvation heap holds ints, which it never tracks; a tuple holding the
    record would stay tracked)."""
    parked = ParkedCalls(2.0, MultiLevelQueue((1.0, 4.0)))
    calls = [_call(f"c{i}", float(i)) for i in range(200)]
    parked.park(_call("warm", 0.0), "w0", now=0.0)  # the lane, tenant and level exist
    gc.disable()
    try:
        gc.collect()
        before = sum(1 for o in gc.get_objects() if type(o) is tuple)
        for call in calls:
            parked.park(call, "w0", now=call.arrival)
        gc.collect(0)  # a young collection: what it untracks, the next ones never walk
        after = sum(1 for o in gc.get_objects() if type(o) is tuple)
    finally:
        gc.enable()
    assert after - before < 20  # one per call would be 200


def test_a_record_is_parked_exactly_while_its_key_maps_to_it() -> None:
    """`CallRecord.parked` tells an order's live entries from stale ones without a look-up:
    True exactly while the parking holds that record (a retry's new record under the same
    key leaves the old one's entries stale)."""
    parked, calls = _parked({"a": ("w0", 1.0), "b": ("w1", 1.0)})
    a, b = calls["a"], calls["b"]
    assert a.parked and b.parked
    retry = _call("a", 1.5)  # the same key: its parking replaces a's
    parked.park(retry, "w1", now=1.5, since=1.5)
    assert not a.parked and retry.parked and parked.holds(retry)
    assert parked.release_expired(3.4) == [b]  # a's entry: stale, dropped
    assert not b.parked and parked.expired(3.5) and retry.parked
    parked.forget(retry)
    assert not retry.parked and len(parked) == 0 and not parked.expired(100.0)



@pytest.mark.parametrize("release", ["expired", "due"])
def test_a_released_call_parked_again_waits_another_max_wait(release: str) -> None:
    """`park_again`: a call just released is back in its home's lane and counted there,
    released again only `max_wait_s` later; its parked time so far is kept."""
    parked = ParkedCalls(2.0, MultiLevelQueue((1.0, 4.0)))
    a = _call("a", 1.0)
    parked.park(a, "w0", now=1.0, since=1.0)
    if release == "expired":
        out = parked.release_expired(3.0)
    else:
        parked.passed(parked._queue.level_of(0.5), 99.0)
        out = parked.release_due(3.0)
    assert out == [a] and not a.parked and parked.count_on("w0", "t") == 0
    parked.park_again(a, "w0", now=3.0)
    assert a.parked and a.lane == "w0" and parked.count_on("w0", "t") == 1
    assert parked.total == 1 and a.parked_s == 2.0 and parked.may_park(a)
    assert parked.release_expired(4.9) == [] and parked.release_expired(5.0) == [a]


@pytest.mark.parametrize("passer_level", [0, 1])
def test_a_parked_call_whose_score_aged_to_a_better_level_is_passed_by_at_that_level(
        passer_level: int) -> None:
    """Diff review 2026-12-06: a parked call scored at level 2 that aged to level 0 (slack)
    was released only by calls of level 2 or worse passing it by."""
    queue = MultiLevelQueue((1.0, 4.0))
    parked = ParkedCalls(2.0, queue)
    early = CallRecord("p", "early", "t", "main", (), 10, 4, 0.0, score=0.5)  # level 0
    aged = CallRecord("p", "aged", "t", "main", (), 10, 4, 0.0, score=5.0)  # level 2
    later = CallRecord("p", "later", "t", "main", (), 10, 4, 1.0, score=0.5)  # level 0
    for call, at in ((early, 0.0), (aged, 0.5), (later, 1.0)):
        parked.park(call, "w0", now=at, since=at)
    queue.relevel(aged, 0.5)
    parked.relevel(aged, queue.level_of(aged.score))
    parked.passed(passer_level, 4.0)  # a call queued 4.0 started elsewhere
    # (without the relevel: ["early", "later"]; in the order they were parked)
    assert [c.call_id for c in parked.release_due(5.0)] == ["early", "aged", "later"]


def test_a_levels_order_keeps_no_more_than_twice_its_parked_calls() -> None:
    """Calls started from their homes before any waited `max_wait_s` (no `release_due`, which
    drops a level's stale entries from its head): their records left their level's order
    anyway, which is rebuilt past twice its live entries (a soak's planner kept 12,000 ended
    calls' records there)."""
    parked = ParkedCalls(2.0, MultiLevelQueue((1.0, 4.0)))
    kept = _call("kept", 0.0)
    parked.park(kept, "w0", now=0.0)
    for i in range(10_000):
        call = _call(f"c{i}", 0.001 * i)
        parked.park(call, "w0", now=call.arrival)
        parked.forget(call)  # started on its home at once
    (level,) = parked._by_level.values()
    assert len(level.order) <= 2 * len(parked) + 64 and level.order[0] is kept
    parked.passed(parked._queue.level_of(0.5), 99.0)
    assert parked.release_due(11.0) == [kept]
