"""The sim engine's mechanisms checked against real SGLang's: the same request sequence, sent
to both one request at a time, must give the same `cached_tokens` per request (repeats, shared
prefixes, a branching conversation, salts, eviction from a small KV pool). Real SGLang here is
the CPU build with a tiny random model: its timings mean nothing, its radix cache is SGLang's."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import engine
from workers.sglang_client import EngineRequest, SGLangClient

pytestmark = pytest.mark.engine
POOL = 4096  # a KV pool small enough for the last scenario to evict


def sequence(vocab: int = 500, seed: int = 7) -> list[dict[str, Any]]:
    """Requests as (input_ids, salt), in order: what each engine gets."""
    rng = random.Random(seed)

    def ids(n: int) -> list[int]:
        return [rng.randrange(10, vocab) for _ in range(n)]

    system, other = ids(300), ids(300)
    turn1 = system + ids(40)
    out: list[dict[str, Any]] = [
        {"name": "first", "ids": turn1, "salt": ""},
        {"name": "repeat", "ids": turn1, "salt": ""},
        {"name": "extends", "ids": turn1 + ids(50), "salt": ""},
        {"name": "branch-a", "ids": system + ids(60), "salt": ""},
        {"name": "branch-b", "ids": system + ids(60), "salt": ""},
        {"name": "other-salt", "ids": turn1, "salt": "tenant:b"},
        {"name": "other-salt-again", "ids": turn1, "salt": "tenant:b"},
        {"name": "unrelated", "ids": other, "salt": ""},
    ]
    out += [{"name": f"filler-{i}", "ids": ids(900), "salt": ""} for i in range(6)]  # evicts
    out.append({"name": "after-eviction", "ids": turn1, "salt": ""})
    return out


async def cached(client: SGLangClient, reqs: list[dict[str, Any]]) -> list[int]:
    out = []
    for i, r in enumerate(reqs):
        res = await client.generate_once(EngineRequest(
            rid=f"fid-{i}", text="", input_ids=r["ids"], cache_salt=r["salt"] or None,
            sampling_params={"max_new_tokens": 1, "temperature": 0}))
        out.append(res.cached_tokens)
    return out


async def test_sim_engine_caches_as_sglang_does(engine_build: Path, tmp_path: Path) -> None:
    reqs = sequence()
    model = str(engine_build / "model")
    extra = f"--max-total-tokens {POOL} --max-running-requests 1"
    async with engine(str(engine_build / "launch"), model, tmp_path, "sglang", extra) as real:
        real_cached = await cached(real, reqs)
    sim_launch = f"{sys.executable} -m ostinato.cli sim-engine --zero-cost"
    async with engine(sim_launch, "sim/fidelity", tmp_path, "sim", extra) as sim:
        sim_cached = await cached(sim, reqs)
    table = "\n".join(f"{r['name']:<18} sglang {a:>5}  sim {b:>5}"
                      for r, a, b in zip(reqs, real_cached, sim_cached, strict=True))
    print(table)
    (tmp_path / "fidelity.txt").write_text(table)
    assert sim_cached == real_cached, table
