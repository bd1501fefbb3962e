"""RedisOutage: after a failure a node is skipped for a while, then one operation probes it
while the others keep skipping; an outage's start and end are told once; the view is per
Redis Cluster node (table-driven over a fake clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cache.outage import WHOLE, Attempt, RedisOutage, cluster_route, outage_of
from tests.ports import closed_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# steps: ("fail" | "ok" | "skip?" | "wait S"), and what each answers (the legacy calls)
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
    # ... while it is out, the others are skipped
    [("fail", True), ("wait 1.0", None), ("skip?", False), ("skip?", True), ("skip?", True),
     ("ok", True), ("skip?", False)],
])
def test_an_outage_skips_redis_then_tries_it_again(steps: list) -> None:
    clock = Clock()
    outage = RedisOutage(retry_s=1.0, clock=clock)
    skipped = 0
    for step, expected in steps:
        if step.startswith("wait"):
            clock.now += float(step.split()[1])
            continue
        told: dict[str, Callable[[], bool]] = {"fail": outage.failed, "ok": outage.succeeded,
                                               "skip?": outage.skip}
        got = told[step]()
        skipped += step == "skip?" and got
        assert got is expected, step
    assert outage.skipped == skipped


# steps over named operations: ("try", name, node, timeout_s | None) -> "sent" | "probe" |
# "skipped"; ("fail" | "ok", name) -> whether it began / ended an outage; ("release", name);
# ("wait", seconds); ("down", node) -> whether the node is down
PROBES: dict[str, list[tuple[Any, ...]]] = {
    "one node out of reach holds back its own operations only": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True),
        ("try", "y", "a", None, "skipped"), ("try", "z", "b", None, "sent"),
        ("try", "w", WHOLE, None, "sent"), ("ok", "z", False),
        ("down", "a", True), ("down", "b", False)],
    "after the window one probe goes; the others skip until it succeeds": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True), ("wait", 1.0, None),
        ("try", "p", "a", 0.5, "probe"), ("try", "y", "a", None, "skipped"),
        ("try", "z", "a", None, "skipped"), ("ok", "p", True),
        ("try", "y2", "a", None, "sent"), ("down", "a", False)],
    "a probe that fails starts another window": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True), ("wait", 1.0, None),
        ("try", "p", "a", 0.5, "probe"), ("wait", 0.2, None), ("fail", "p", False),
        ("try", "y", "a", None, "skipped"), ("wait", 0.9, None),
        ("try", "y2", "a", None, "skipped"), ("wait", 0.1, None),
        ("try", "p2", "a", 0.5, "probe"), ("ok", "p2", True)],
    "a probe released untold (cancelled) lets the next operation probe at once": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True), ("wait", 1.0, None),
        ("try", "p", "a", 0.5, "probe"), ("release", "p", None),
        ("try", "p2", "a", 0.5, "probe"), ("try", "y", "a", None, "skipped"),
        ("down", "a", True)],
    "a probe never told of holds the others back for its own timeout only": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True), ("wait", 1.0, None),
        ("try", "p", "a", 0.5, "probe"), ("wait", 0.4, None),
        ("try", "y", "a", None, "skipped"), ("wait", 0.1, None),
        ("try", "p2", "a", 0.5, "probe"),
        # the first one's late release frees nothing: the second still holds them back
        ("release", "p", None), ("try", "z", "a", None, "skipped"),
        # and its late success ends the outage all the same (Redis answered)
        ("ok", "p", True), ("try", "z2", "a", None, "sent")],
    "a probe with no timeout holds them back for probe_s": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True), ("wait", 1.0, None),
        ("try", "p", "a", None, "probe"), ("wait", 4.9, None),
        ("try", "y", "a", None, "skipped"), ("wait", 0.1, None),
        ("try", "p2", "a", None, "probe")],
    "a result of an operation sent before the outage began changes nothing": [
        ("try", "old", "a", None, "sent"), ("try", "old2", "a", None, "sent"),
        ("wait", 0.1, None), ("try", "x", "a", None, "sent"), ("fail", "x", True),
        ("wait", 1.0, None), ("try", "p", "a", 0.5, "probe"),
        # a stale failure neither extends the window nor ends the probe; a stale success
        # does not end the outage
        ("fail", "old", False), ("ok", "old2", False), ("down", "a", True),
        ("try", "y", "a", None, "skipped"), ("ok", "p", True)],
    "a failure of an operation sent before the node came back begins no outage": [
        ("try", "old", "a", None, "sent"), ("try", "x", "a", None, "sent"),
        ("fail", "x", True), ("wait", 1.0, None), ("try", "p", "a", 0.5, "probe"),
        ("ok", "p", True), ("wait", 0.1, None), ("fail", "old", False),
        ("down", "a", False)],
    "each node's outage is its own, begun and ended once": [
        ("try", "x", "a", None, "sent"), ("try", "y", "b", None, "sent"),
        ("fail", "x", True), ("fail", "y", True), ("wait", 1.0, None),
        ("try", "pa", "a", 0.5, "probe"), ("try", "pb", "b", 0.5, "probe"),
        ("ok", "pa", True), ("down", "b", True), ("fail", "pb", False),
        ("try", "z", "a", None, "sent"), ("try", "w", "b", None, "skipped")],
    "released after being told: nothing more changes": [
        ("try", "x", "a", None, "sent"), ("fail", "x", True), ("wait", 1.0, None),
        ("try", "p", "a", 0.5, "probe"), ("fail", "p", False), ("release", "p", None),
        ("try", "y", "a", None, "skipped")],
}


@pytest.mark.parametrize("name", list(PROBES))
def test_one_probe_at_a_time_per_node(name: str) -> None:
    clock = Clock()
    outage = RedisOutage(retry_s=1.0, clock=clock, probe_s=5.0)
    ops: dict[str, Attempt] = {}
    skipped = 0
    for step in PROBES[name]:
        what = step[0]
        if what == "wait":
            clock.now += step[1]
        elif what == "try":
            _, op, node, timeout_s, expected = step
            attempt = outage.attempt(node, timeout_s)
            got = "skipped" if attempt is None else "probe" if attempt.probe else "sent"
            assert got == expected, step
            skipped += attempt is None
            if attempt is not None:
                ops[op] = attempt
        elif what == "release":
            outage.release(ops[step[1]])
        elif what == "down":
            assert (step[1] in outage.down_nodes()) is step[2], step
        else:
            attempt = ops[step[1]]
            told = outage.failed if what == "fail" else outage.succeeded
            assert told(attempt.started, attempt.node) is step[2], step
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


def test_a_slot_that_moved_to_another_node_is_not_skipped() -> None:
    """Failover: the client's slot map now gives the key's slot to a promoted replica. The
    key's operations go there at once, though the old master's window is still open."""
    clock = Clock()
    slot_map = {"k": "a:1", "other": "b:1"}
    outage = RedisOutage(retry_s=1.0, clock=clock, route=slot_map.__getitem__)
    attempt = outage.attempt(outage.node_of("k"))
    assert attempt is not None and attempt.node == "a:1"
    assert outage.failed(attempt.started, attempt.node)
    assert outage.attempt(outage.node_of("k")) is None  # skipped: a:1 is out of reach
    assert outage.attempt(outage.node_of("other")) is not None
    slot_map["k"] = "c:1"  # promoted
    moved = outage.attempt(outage.node_of("k"))
    assert moved is not None and moved.node == "c:1" and not moved.probe
    assert outage.down_nodes() == ["a:1"] and outage.skipped == 1


def test_no_key_is_the_whole_client() -> None:
    outage = RedisOutage(route=lambda key: f"node-of-{key}")
    assert outage.node_of(None) is WHOLE and outage.node_of("k") == "node-of-k"
    assert RedisOutage().node_of("k") is WHOLE  # a single server: one node


async def test_a_cluster_clients_route_reads_its_slot_map() -> None:
    """redis-py's cluster client places a key by its slot map (`get_node_from_key`);
    before the map is read (or for a slot not covered) the key is `WHOLE`'s."""
    client = AsyncRedisCluster(host="127.0.0.1", port=closed_port())  # never connected
    try:
        route = cluster_route(client)
        assert route is not None and route("k") is WHOLE  # no slot map yet
        assert outage_of(client).node_of("k") is WHOLE
    finally:
        await client.aclose()
    assert cluster_route(object()) is None  # a single server's client: no route


def test_one_view_per_client() -> None:
    a, b = object.__new__(Clock), object.__new__(Clock)
    assert outage_of(a) is outage_of(a) and outage_of(a) is not outage_of(b)
