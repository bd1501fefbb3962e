"""The outage view around real Redis operations (cache/redis_client.within): one probe at a
time, released when its caller is cancelled; on a Redis Cluster, one node's process stopped
holds back that node's keys only, and a slot handed to another node is served there.

Real redis-server processes; time in the outage view is a fake clock, moved by hand."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cache.outage import RedisOutage, Skipped, cluster_route
from cache.redis_client import AsyncClient, connect, operation_bound, within
from tests.ports import closed_port
from tests.redis_cluster import LocalRedisCluster


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Unavailable(Exception):
    pass


def _skipped(exc: object) -> bool:
    return isinstance(exc, _Unavailable) and isinstance(exc.__cause__, Skipped)


async def _get(client: AsyncClient, key: str, outage: RedisOutage) -> Any:
    # (1 s: the stores' bound, twice redis.timeout_s; a cluster client retries a node out of
    # reach for longer)
    return await within(client.get(key), 1.0, _Unavailable, outage, key=key)


async def test_one_probe_goes_when_the_window_ends_the_others_skip() -> None:
    """Nothing listens: the first failure opens the window; when it ends, of three operations
    at once the first probes (and fails, opening another window), the two others skip."""
    clock = Clock()
    outage = RedisOutage(retry_s=1.0, clock=clock)
    gone = connect(f"redis://127.0.0.1:{closed_port()}", timeout_s=0.5)
    try:
        with pytest.raises(_Unavailable):
            await _get(gone, "k", outage)
        assert outage.down and outage.skipped == 0
        clock.now += 1.0
        results = await asyncio.gather(*(_get(gone, "k", outage) for _ in range(3)),
                                        return_exceptions=True)
        assert [_skipped(r) for r in results] == [False, True, True]
        assert isinstance(results[0], _Unavailable) and outage.skipped == 2
        with pytest.raises(_Unavailable) as again:  # the probe failed: a new window
            await _get(gone, "k", outage)
        assert _skipped(again.value)
    finally:
        await gone.aclose()


async def _never_answers() -> bytes:
    await asyncio.Event().wait()  # (Redis stalled: no answer until cancelled)
    raise AssertionError("unreachable")


async def _raises_what_says_nothing_of_redis() -> bytes:
    raise ValueError("not JSON")  # (e.g. a caller's coroutine failing on what it read)


@pytest.mark.parametrize("ends", ["cancelled", "unexpected error"])
async def test_a_probe_that_ends_untold_lets_the_next_operation_probe(
        redis_url: str, ends: str) -> None:
    """The probe's caller is cancelled while Redis has not answered, or its operation fails
    with an error that says nothing of Redis: the others are not held back by it; the next
    operation probes, and its success ends the outage."""
    clock = Clock()
    outage = RedisOutage(retry_s=1.0, clock=clock)
    client = connect(redis_url, timeout_s=5.0)
    key = f"t:{uuid.uuid4().hex}"
    try:
        await client.set(key, "v", px=60_000)
        outage.failed(clock())  # (as after a timeout)
        clock.now += 1.0
        if ends == "cancelled":
            probe = asyncio.create_task(within(_never_answers(), 10.0, _Unavailable, outage))
            await asyncio.sleep(0)  # (one turn of the loop: the probe is under way)
            with pytest.raises(_Unavailable) as held:
                await _get(client, key, outage)
            assert _skipped(held.value)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
        else:
            with pytest.raises(ValueError):
                await within(_raises_what_says_nothing_of_redis(), 10.0, _Unavailable, outage)
        assert outage.down  # it told nothing
        assert await _get(client, key, outage) == b"v"  # the next one probes
        assert not outage.down
    finally:
        await client.aclose()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    """A cluster of its own (one of its nodes is stopped), whose nodes serve their slots
    while another is failed (a cache deployment without replicas)."""
    c = LocalRedisCluster(tmp_path / "cluster", full_coverage=False)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _key_of(cluster: LocalRedisCluster, node: int, client: AsyncClient) -> str:
    """A key whose slot is node `node`'s."""
    slots = cluster.slots(node)
    while True:
        key = f"t:{uuid.uuid4().hex}"
        if client.keyslot(key) in slots:  # type: ignore[union-attr]
            return key


async def test_one_cluster_node_stopped_holds_back_its_keys_only(
        cluster: LocalRedisCluster) -> None:
    clock = Clock()
    client = connect(cluster.url, cluster=True, timeout_s=0.5)
    try:
        outage = RedisOutage(retry_s=1.0, clock=clock, route=cluster_route(client))
        keys = [_key_of(cluster, i, client) for i in range(3)]
        for key in keys:
            await client.set(key, key)
        dead = f"127.0.0.1:{cluster.nodes[2].port}"
        assert outage.node_of(keys[2]) == dead
        cluster.stop_node(2)

        with pytest.raises(_Unavailable) as failed:  # sent, and found out of reach
            await _get(client, keys[2], outage)
        assert not _skipped(failed.value) and outage.down_nodes() == [dead]
        # within the window: the stopped node's keys are skipped, the others' served
        for _ in range(3):
            assert await _get(client, keys[0], outage) == keys[0].encode()
            assert await _get(client, keys[1], outage) == keys[1].encode()
            with pytest.raises(_Unavailable) as skipped:
                await _get(client, keys[2], outage)
            assert _skipped(skipped.value)
        assert outage.skipped == 3 and outage.down_nodes() == [dead]

        # the window over, one probe: it fails while the node is stopped (a new window) ...
        clock.now += 1.0
        with pytest.raises(_Unavailable) as probed:
            await _get(client, keys[2], outage)
        assert not _skipped(probed.value) and outage.down_nodes() == [dead]
        # ... and ends the outage once it is back
        cluster.restart_node(2)
        clock.now += 1.0
        assert await _get(client, keys[2], outage) is None  # (no data kept: --save "")
        assert not outage.down
    finally:
        await client.aclose()


async def test_a_slot_handed_to_another_node_is_served_there(
        cluster: LocalRedisCluster) -> None:
    """As after a failover: the stopped node's slots go to another node. Once the client's
    slot map says so, the key's operations go there, though the stopped node's window is
    not over (its own view is not consulted for them any more)."""
    clock = Clock()
    client = connect(cluster.url, cluster=True, timeout_s=0.5)
    try:
        outage = RedisOutage(retry_s=1.0, clock=clock, route=cluster_route(client))
        key = _key_of(cluster, 2, client)
        await client.set(key, "v")
        dead = f"127.0.0.1:{cluster.nodes[2].port}"
        cluster.stop_node(2)
        with pytest.raises(_Unavailable):
            await _get(client, key, outage)
        assert outage.down_nodes() == [dead]

        cluster.hand_over(2, heir=1)
        await client.nodes_manager.initialize()  # type: ignore[union-attr]  # (map read again)
        heir = f"127.0.0.1:{cluster.nodes[1].port}"
        assert outage.node_of(key) == heir
        assert await _get(client, key, outage) is None  # sent to the heir (the value is lost)
        await client.set(key, "w")
        assert await _get(client, key, outage) == b"w"
        assert outage.skipped == 0
    finally:
        await client.aclose()


async def test_a_stalled_masters_slot_handed_over_is_served_once_a_probe_times_out(
        tmp_path: Path) -> None:
    """A master paused (not stopped) whose slots go to another node: the probe's socket
    timeout must fire before the operation's bound, so that the cluster client reads its slot
    map again (with a bound equal to the socket timeout the probe was cancelled first, every
    time, and the slot was never served again: a reviewer's finding)."""
    cluster = LocalRedisCluster(tmp_path / "stalled", full_coverage=False)
    cluster.start()
    clock = Clock()
    timeout_s = 0.5  # the client's socket timeout, redis.timeout_s
    client = connect(cluster.url, cluster=True, timeout_s=timeout_s)
    bound = operation_bound(timeout_s)
    try:
        outage = RedisOutage(retry_s=1.0, clock=clock, route=cluster_route(client))
        key = _key_of(cluster, 2, client)
        await client.set(key, "v")
        with cluster.nodes[2].paused():
            with pytest.raises(_Unavailable):
                await within(client.get(key), bound, _Unavailable, outage, key=key)
            cluster.hand_over(2, heir=1)
            clock.now += 1.0  # the window over: this operation is the probe
            heir = f"127.0.0.1:{cluster.nodes[1].port}"
            # the probe times out at the paused node, or finds the new map: either way a
            # refresh was asked for, and the next operation goes to the heir
            with contextlib.suppress(_Unavailable):
                await within(client.get(key), bound, _Unavailable, outage, key=key)
            clock.now += 1.0
            assert await within(client.get(key), bound, _Unavailable, outage, key=key) is None
            assert outage.node_of(key) == heir
    finally:
        await client.aclose()
        cluster.stop()
