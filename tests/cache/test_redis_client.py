"""The one factory of Redis clients: one server, or a Redis Cluster when configured."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from cache import keys
from cache.outage import RedisOutage, Skipped
from cache.redis_client import connect, connect_sync, within
from ostinato import cli
from ostinato.config import ConfigError, load_mesh_config
from tests.ports import closed_port


def test_cluster_mode_is_configured_and_needs_a_url() -> None:
    cfg = load_mesh_config(None, environ={"OSTINATO_REDIS__CLUSTER": "true",
                                          "OSTINATO_REDIS__URL": "redis://127.0.0.1:7000/0"})
    assert cfg.redis.cluster and cfg.redis.url == "redis://127.0.0.1:7000/0"
    assert not load_mesh_config(None, environ={}).redis.cluster
    with pytest.raises(ConfigError, match=r"redis\.cluster: needs redis\.url"):
        load_mesh_config(None, environ={"OSTINATO_REDIS__CLUSTER": "true"})


async def test_the_factory_gives_a_cluster_client_only_when_asked(
        redis_url: str, redis_cluster_url: str) -> None:
    single = connect(redis_url, timeout_s=1.0)
    cluster = connect(redis_cluster_url, cluster=True, timeout_s=1.0)
    try:
        assert isinstance(single, aioredis.Redis) and not isinstance(single, AsyncRedisCluster)
        assert isinstance(cluster, AsyncRedisCluster)
        # keys of many slots, written and read through one node's URL
        names = [keys.exact_entry(f"t{i}", "d") for i in range(20)]
        for name in names:
            await cluster.set(name, name, px=60_000)
        assert [await cluster.get(n) for n in names] == [n.encode() for n in names]
        assert len({cluster.keyslot(n) for n in names}) > 1
        assert len(cluster.get_primaries()) == 3
    finally:
        await single.aclose()
        await cluster.aclose()


def test_the_sync_factory_too(redis_url: str, redis_cluster_url: str) -> None:
    single = connect_sync(redis_url, timeout_s=1.0)
    cluster = connect_sync(redis_cluster_url, cluster=True, timeout_s=1.0)
    try:
        assert isinstance(single, redis.Redis) and isinstance(cluster, RedisCluster)
        assert single.ping() and cluster.ping()
    finally:
        single.close()
        cluster.close()


def test_the_tenants_command_works_on_a_cluster(redis_cluster_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    base = ["tenants", "--redis-url", redis_cluster_url, "--cluster"]
    assert cli.main([*base, "create", "cluster-acme", "--rpm", "60"]) == 0
    assert cli.main([*base, "list"]) == 0
    assert cli.main([*base, "revoke", "cluster-acme"]) == 0
    out = capsys.readouterr().out
    assert "tenant cluster-acme created" in out
    assert ("tenant cluster-acme: 1 key(s), weight unset (from planner.tenant_weights, else 1), "
            "rpm 60") in out
    assert "tenant cluster-acme revoked (1 key(s) removed)" in out


class _Unavailable(Exception):
    pass


async def test_an_error_the_server_answers_does_not_make_others_skip_redis(
        redis_url: str) -> None:
    """WRONGTYPE from a live Redis fails that operation only; a refused connection starts
    an outage (the next operation is skipped, the skip named as its cause)."""
    client = aioredis.from_url(redis_url)
    key = f"t:{uuid.uuid4().hex}"
    try:
        outage = RedisOutage(clock=lambda: 0.0)  # (time stands still: no race with the skip)
        await client.set(key, "x")
        with pytest.raises(_Unavailable):
            await within(client.lpush(key, "y"), 2.0, _Unavailable, outage)  # WRONGTYPE
        assert not outage.down
        assert await within(client.get(key), 2.0, _Unavailable, outage) == b"x"
    finally:
        await client.delete(key)
        await client.aclose()
    gone = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.5)
    try:
        with pytest.raises(_Unavailable):
            await within(gone.get(key), 2.0, _Unavailable, outage)
        assert outage.down
        with pytest.raises(_Unavailable) as skipped:
            await within(gone.get(key), 2.0, _Unavailable, outage)
        assert isinstance(skipped.value.__cause__, Skipped) and outage.skipped == 1
    finally:
        await gone.aclose()


async def test_a_cluster_with_no_node_to_reach_is_an_outage() -> None:
    """redis-py's cluster client raises RedisClusterUnreachableError (no RedisError): it is
    the caller's unavailable error and starts an outage, as a single server's would."""
    client = connect(f"redis://127.0.0.1:{closed_port()}", cluster=True, timeout_s=0.5)
    outage = RedisOutage(clock=lambda: 0.0)
    try:
        with pytest.raises(_Unavailable):
            await within(client.get("k"), 5.0, _Unavailable, outage)
        assert outage.down
    finally:
        await client.aclose()


async def test_a_client_out_of_connections_waits_then_is_no_outage(redis_url: str) -> None:
    """A burst past the client's connections waits for a free one, then fails with
    MaxConnectionsError, which says nothing of Redis: no outage starts (redis-py's default
    pool failed at once past 100, taken for Redis out of reach, and a burst of ~150
    requests turned quotas off for every tenant: cancellation review 2026-12-08 F1)."""
    client = connect(redis_url, wait_s=0.2, max_connections=1)
    other = connect(redis_url, timeout_s=2.0)
    key = f"t:{uuid.uuid4().hex}"
    outage = RedisOutage(clock=lambda: 0.0)
    try:
        held = asyncio.create_task(client.blpop([key], timeout=0))  # holds the one connection
        while not client.connection_pool._in_use_connections:  # (until it has taken it)
            await asyncio.sleep(0.01)
        with pytest.raises(_Unavailable) as busy:
            await within(client.get(key), 5.0, _Unavailable, outage)
        assert isinstance(busy.value.__cause__, redis.exceptions.MaxConnectionsError)
        assert not outage.down
        await other.rpush(key, "x")  # the held one ends; a waiting command gets it
        assert tuple(await held) == (key.encode(), b"x")
        waiting = asyncio.create_task(within(client.get(key), 5.0, _Unavailable, outage))
        assert await waiting is None and not outage.down
    finally:
        await other.delete(key)
        await other.aclose()
        await client.aclose()


async def test_by_default_a_full_pool_is_told_before_the_callers_bound(redis_url: str) -> None:
    """Diff review 2026-12-08: the pool waited as long as its callers' bound (`within`,
    redis.timeout_s), whose timeout fired first and was taken for an outage. By default it
    waits half that: MaxConnectionsError, no outage."""
    client = connect(redis_url, timeout_s=2.0, max_connections=1)  # (a wait of 1 s)
    outage = RedisOutage(clock=lambda: 0.0)
    held = await client.connection_pool.get_connection()  # the one connection, held
    try:
        with pytest.raises(_Unavailable) as busy:
            await within(client.get("k"), 2.0, _Unavailable, outage)
        assert isinstance(busy.value.__cause__, redis.exceptions.MaxConnectionsError)
        assert not outage.down
    finally:
        await client.connection_pool.release(held)
        await client.aclose()
