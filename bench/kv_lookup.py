"""`ostinato bench kv`: KV-reference index lookup latency, as the planner pays it per call.

Real parts: an embedded redis-server and cache/kv_index.py exactly as the planner and
workers call it. Each worker's key is filled with `blocks` block hashes (chains of
`prompt_blocks`-block prompts, salted per tenant); half the lookups are a prompt one worker
holds, half an unseen prompt. Each lookup asks for every worker's longest prefix in one
pipelined round trip; lookups run one at a time (latency, not throughput).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from cache.block_hash import DEFAULT_BLOCK_SIZE, prefix_block_hashes
from cache.kv_index import KvIndex
from cache.redis_server import EmbeddedRedis


def _prompt(rng: random.Random, blocks: int) -> list[int]:
    """A prompt's token ids (random: what is measured is Redis, not a tokenizer)."""
    return [rng.randrange(128_000) for _ in range(DEFAULT_BLOCK_SIZE * blocks)]


async def _run(workers: int, blocks: int, prompt_blocks: int, lookups: int,
               seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    server = EmbeddedRedis()
    client = aioredis.from_url(server.start())
    index = KvIndex(client, ttl_s=3600, timeout_s=2.0)
    ids = [f"bench-w{i}" for i in range(workers)]
    try:
        held: list[tuple[str, list[int], str]] = []  # (worker, prompt, salt) published
        t0 = time.perf_counter()
        publish_ms = []
        for w in ids:
            for p in range(max(1, blocks // prompt_blocks)):
                prompt, salt = _prompt(rng, prompt_blocks), f"tenant:t{p % 16}"
                start = time.perf_counter()
                await index.publish(w, prefix_block_hashes(prompt, salt), time.time())
                publish_ms.append((time.perf_counter() - start) * 1000)
                if p < 8:
                    held.append((w, prompt, salt))
        fill_s = time.perf_counter() - t0
        timings, correct = [], 0
        for i in range(lookups):
            if i % 2 == 0:
                worker, prompt, tenant = held[rng.randrange(len(held))]
                expected = {w: (prompt_blocks if w == worker else 0) for w in ids}
            else:
                prompt, tenant = _prompt(rng, prompt_blocks), "tenant:t0"
                expected = dict.fromkeys(ids, 0)
            hashes = prefix_block_hashes(prompt, tenant)
            start = time.perf_counter()
            found = await index.longest_prefixes(ids, hashes)
            timings.append((time.perf_counter() - start) * 1000)
            correct += found == expected
        sizes = [await index.size(w) for w in ids]
        timings.sort()
        publish_ms.sort()
        return {"workers": workers, "blocks_per_worker": sizes[0], "prompt_blocks": prompt_blocks,
                "lookups": lookups, "correct": correct,
                "lookup_ms": {"p50": round(timings[len(timings) // 2], 3),
                              "p99": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 3),
                              "mean": round(sum(timings) / len(timings), 3)},
                "publish_ms_p50": round(publish_ms[len(publish_ms) // 2], 3),
                "fill_s": round(fill_s, 2)}
    finally:
        await client.aclose()
        server.stop()


def kv_command(workers: int, blocks: int, prompt_blocks: int, lookups: int, seed: int,
               out: str | None) -> dict[str, Any]:
    results = {"kind": "kv_lookup", **asyncio.run(_run(workers, blocks, prompt_blocks, lookups,
                                                       seed))}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
    return results
