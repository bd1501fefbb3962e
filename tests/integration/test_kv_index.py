"""The KV-reference index through the real mesh: workers publish what their engines ran,
the planner routes a new program's first call to the engine already holding its prompt,
and another tenant's identical prompt matches nothing there."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import redis

import ostinato
from cache import keys
from cache.block_hash import block_hex, prefix_block_hashes
from gateway.mesh_run import cache_salt
from ostinato.mesh import Mesh
from ostinato.program_ids import namespace
from ostinato.tokenizers import load_renderer
from tests.conftest import API_KEYS

TENANT_KEY = {tenant: key for key, tenant in API_KEYS.items()}


def context(topic: str) -> str:
    return f"Background for the analyst: a long report on {topic}. " * 12


def run(mesh: Mesh, tenant: str, text: str, max_tokens: int) -> ostinato.CallOutput:
    with ostinato.Client(mesh.endpoints.gateway, api_key=TENANT_KEY[tenant]) as client, \
            client.program() as p:
        return p.call(messages=[{"role": "user", "content": text}], max_tokens=max_tokens,
                      temperature=0.7)


def held(mesh: Mesh, tenant: str, text: str) -> dict[str, int]:
    """Per worker, the leading blocks of this tenant's prompt indexed in Redis."""
    _, ids = load_renderer("sim").render([{"role": "user", "content": text}], None)
    client = redis.Redis.from_url(mesh.endpoints.redis_url)
    try:
        # the KV namespace carries the tenant's generation (cache/tenant_directory.py)
        record = json.loads(client.hget(keys.tenancy_tenants(), tenant) or "{}")
        salt = cache_salt(namespace(tenant, record.get("generation", "")))
        hashes = [block_hex(h) for h in prefix_block_hashes(ids, salt)]
        out = {}
        for w in mesh.endpoints.workers:
            scores = client.zmscore(f"ost:kv:{{w:{w}}}:blocks", hashes)
            out[w] = next((i for i, s in enumerate(scores) if s is None), len(scores))
        return out
    finally:
        client.close()


def test_new_programs_follow_their_prompt_to_the_engine_holding_it(mesh: Mesh) -> None:
    topics = ("tidal energy in Brittany", "copper prices in 1970")
    with ThreadPoolExecutor(2) as pool:  # two at once: the planner spreads them over both workers
        seeds = list(pool.map(lambda t: run(mesh, "acme", context(t), 120), topics))
    for topic, seed in zip(topics, seeds, strict=True):
        # completion publishes are fire-and-forget: polled until they land (bounded)
        deadline = time.monotonic() + 30
        while held(mesh, "acme", context(topic))[seed.worker_id] <= 10:
            assert time.monotonic() < deadline, "the seed's blocks were never indexed"
            time.sleep(0.05)
        follow = run(mesh, "acme", context(topic) + "Summarize it in one line.", 8)
        assert follow.worker_id == seed.worker_id
    # Isolation: globex's identical prompt matches no block on any worker.
    assert set(held(mesh, "globex", context(topics[0])).values()) == {0}
