"""`ostinato bench live`: the real mesh on loopback (real Redis, gRPC, workers, planner,
gateway) with zero-cost sim engines, so what is measured is the mesh's own overhead.

Each call is one program of one call (StartProgram, Call, EndProgram through the SDK),
sent closed-loop with `--concurrency` callers or open-loop at `--rate`. overhead_ms is
end-to-end call latency minus the engine's reported service time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import ostinato
from bench.results import percentile
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh

PROMPT = [{"role": "user", "content": "Classify this ticket: the invoice total looks wrong."}]


async def _drive(gateway: str, calls: int, concurrency: int, rate: float) -> tuple[list[float], int]:
    overheads: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)

    async with ostinato.AsyncClient(gateway) as client:
        async def one(i: int) -> None:
            nonlocal errors
            async with sem:
                start = time.perf_counter()
                try:
                    async with await client.program(program_class="bench-live") as program:
                        out = await program.call(messages=PROMPT, max_tokens=8, temperature=0.0)
                except ostinato.OstinatoError:
                    errors += 1
                    return
                overheads.append((time.perf_counter() - start - out.engine_s) * 1000)

        tasks = []
        for i in range(calls):
            if rate > 0:
                await asyncio.sleep(1.0 / rate)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return overheads, errors


def run_live(calls: int, concurrency: int, rate: float, workers: int) -> dict[str, Any]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": workers, "worker": {"max_inflight": max(4, concurrency)},
        "sim_engine": {"zero_cost": True},
    })
    with Mesh(cfg, ephemeral_ports=True) as mesh:
        asyncio.run(_drive(mesh.endpoints.gateway, min(calls, 20), min(concurrency, 4), 0.0))  # warm-up
        start = time.perf_counter()
        overheads, errors = asyncio.run(_drive(mesh.endpoints.gateway, calls, concurrency, rate))
        wall = time.perf_counter() - start
    return {
        "kind": "live", "simulated": True, "engines": workers, "profile": "zero-cost sim engine",
        "runs": [{
            "policy": cfg.planner.policy, "rate": rate, "concurrency": concurrency, "calls": calls,
            "completed": len(overheads), "errors": errors,
            "calls_per_s": round(len(overheads) / wall, 3) if wall > 0 else 0.0,
            "overhead_ms": {"p50": round(percentile(overheads, 0.5), 3),
                            "p95": round(percentile(overheads, 0.95), 3),
                            "p99": round(percentile(overheads, 0.99), 3)},
            "wall_s": round(wall, 3),
        }],
    }


def live_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.calls < 1 or args.concurrency < 1 or args.workers < 1 or args.rate < 0:
        raise ValueError("--calls, --concurrency and --workers must be >= 1, --rate >= 0")
    results = run_live(args.calls, args.concurrency, args.rate, args.workers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    run = results["runs"][0]
    print("live mesh on loopback, zero-cost SIMULATED engines (the mesh's own overhead):")
    print(json.dumps(run, indent=2))
    print(f"wrote {out / 'results.json'}")
    return results
