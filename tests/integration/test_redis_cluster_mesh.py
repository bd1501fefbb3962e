"""The whole mesh on a Redis Cluster (`redis.cluster: true`): gateway, planner and a worker as
processes, their Redis the three-master cluster of tests/redis_cluster.py. Tenancy (the key's
tenant comes from Redis), the exact cache, the KV-reference index and the planner's records
all work across the cluster's slots."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import ostinato
from cache import keys
from cache.redis_client import connect_sync
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tests.stored_ids import stored_program_id

USER = [{"role": "user", "content": "Plan a trip to Lyon."}]


@pytest.fixture(scope="module")
def cluster_mesh(redis_cluster_url: str) -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "redis": {"url": redis_cluster_url, "cluster": True},
        "gateway": {"api_keys": {"key-cluster": "cluster-acme"}, "cache_mode": "exact",
                    "semantic_cache": False},
        "sim_engine": {"time_scale": 0.5}})
    mesh = Mesh(cfg, ephemeral_ports=True)
    mesh.start()
    yield mesh
    mesh.close()


def test_a_program_on_a_redis_cluster(cluster_mesh: Mesh, redis_cluster_url: str) -> None:
    with ostinato.Client(cluster_mesh.endpoints.gateway, api_key="key-cluster") as client, \
            client.program() as program:
        history = list(USER)
        outs = []
        for step in range(3):
            out = program.call(messages=history, max_tokens=8, temperature=0.0)
            outs.append(out)
            history += [{"role": "assistant", "content": out.text},
                        {"role": "tool", "content": f"tool result {step}"}]
        again = program.call(messages=USER, max_tokens=8, temperature=0.0)
    assert all(o.text and o.simulated for o in outs)
    assert outs[-1].usage.cached_tokens > 0  # routed to the engine holding the prefix
    assert again.cache_hit == "exact" and again.text == outs[0].text
    store = connect_sync(redis_cluster_url, cluster=True, decode_responses=True)
    try:  # the tenant's program index: a slot of another master than the URL's node
        stored = stored_program_id(store, "cluster-acme", program.program_id)
        assert store.zscore(keys.tenant_programs("cluster-acme"), stored)
        meta = store.hgetall(keys.program_meta(stored))
        assert meta["tenant"] == "cluster-acme" and meta["state"] == "ended"
        calls = store.hgetall(keys.program_calls(stored))
        assert {json.loads(c)["state"] for c in calls.values()} == {"done"} and len(calls) == 4
        worker, = cluster_mesh.endpoints.workers
        assert store.zcard(keys.kv_blocks(worker)) > 0
    finally:
        store.close()
