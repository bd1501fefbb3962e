"""`ostinato bench live`: the real mesh on loopback (real Redis, gRPC, workers, planner,
gateway) with zero-cost sim engines, so what is measured is the mesh's own overhead.

Each call is one program of one call (StartProgram, CallWhole, EndProgram through the SDK),
sent closed-loop with `--concurrency` callers or open-loop at `--rate` (sends on a fixed
schedule, each call timed from its scheduled send; a run's verdict as `--rates`' rows').
overhead_ms is end-to-end call latency minus the engine's reported service time.

With `--rates`, one mesh is measured open-loop at each fixed rate by a load generator in a
process of its own (bench/live_load.py), per mode (`--modes`): a table of offered and
completed calls/s, errors by status and overhead p50/p95/p99 per rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

import ostinato
from bench.live_load import (
    ENGINE_MODE,
    MODES,
    SUSTAINED_COMPLETED,
    SUSTAINED_P99_MS,
    Outcome,
    run_rate,
    send_schedule,
    summarize,
)
from bench.results import percentile
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh

PROMPT = [{"role": "user", "content": "Classify this ticket: the invoice total looks wrong."}]


CALL_TIMEOUT_S = 30.0  # a call not answered by then counts as an error (DEADLINE_EXCEEDED)


async def _drive(gateway: str, calls: int, concurrency: int, rate: float,
                 ) -> tuple[list[float], list[Outcome]]:
    """Closed loop (`rate` 0): `concurrency` callers, each call timed from when a caller
    takes it. Open loop: sends scheduled at start + i / rate (bench/live_load.py's schedule),
    at most `concurrency` in flight, each call timed from its scheduled send, so that a
    send held back (by the cap, or by the generator itself) shows in its latency instead
    of lowering the rate offered (no coordinated omission). Gives the schedule ([] closed
    loop) and each call's outcome."""
    sem = asyncio.Semaphore(concurrency)
    outcomes: list[Outcome] = []

    async with ostinato.AsyncClient(gateway, timeout_s=CALL_TIMEOUT_S) as client:
        async def one(scheduled: float | None) -> None:
            async with sem:
                start = time.perf_counter() if scheduled is None else scheduled
                try:
                    async with client.program(program_class="bench-live") as program:
                        out = await program.call(messages=PROMPT, max_tokens=8, temperature=0.0)
                except ostinato.OstinatoError as exc:
                    outcomes.append(Outcome(exc.code.name if exc.code else "ERROR", 0.0, 0.0,
                                            time.perf_counter()))
                    return
                now = time.perf_counter()
                latency = (now - start) * 1000
                outcomes.append(Outcome("OK", latency, latency - out.engine_s * 1000, now))

        sends = send_schedule(rate, calls / rate, time.perf_counter() + 0.05) if rate > 0 else []
        schedule: list[float | None] = [*sends] if sends else [None] * calls
        tasks = []
        for at in schedule:
            if at is not None and (delay := at - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at)))
        await asyncio.gather(*tasks)
    return sends, outcomes


def run_live(calls: int, concurrency: int, rate: float, workers: int,
             tracing: str = "off") -> dict[str, Any]:
    """`tracing`: off, or file (every service records every span and appends it to a JSON
    lines file: the whole cost of tracing, export included)."""
    with tempfile.TemporaryDirectory(prefix="ostinato-bench-live-") as tmp:
        overrides: dict[str, Any] = {
            "workers": workers, "worker": {"max_inflight": max(4, concurrency)},
            "sim_engine": {"zero_cost": True},
            # its own mesh on loopback, for its length; sampled calls never hit the answer
            # cache, so the gateway skips loading the embedding model (as the open-loop runs)
            "gateway": {"allow_anonymous": True, "semantic_cache": False},
        }
        if tracing == "file":
            overrides["telemetry"] = {"traces": "file", "trace_file": f"{tmp}/spans.jsonl"}
        cfg = load_mesh_config(None, environ={}, overrides=overrides)
        with Mesh(cfg, ephemeral_ports=True) as mesh:
            asyncio.run(_drive(mesh.endpoints.gateway, min(calls, 20), min(concurrency, 4), 0.0))  # warm-up
            start = time.perf_counter()
            sends, outcomes = asyncio.run(_drive(mesh.endpoints.gateway, calls, concurrency, rate))
            wall = time.perf_counter() - start
    overheads = [o.overhead_ms for o in outcomes if o.status == "OK"]
    run: dict[str, Any] = {
        "policy": cfg.planner.policy, "tracing": tracing, "rate": rate,
        "concurrency": concurrency, "calls": calls, "completed": len(overheads),
        "errors": len(outcomes) - len(overheads),
        "calls_per_s": round(len(overheads) / wall, 3) if wall > 0 else 0.0,
        "overhead_ms": {"p50": round(percentile(overheads, 0.5), 3),
                        "p95": round(percentile(overheads, 0.95), 3),
                        "p99": round(percentile(overheads, 0.99), 3)},
        "wall_s": round(wall, 3),
    }
    if sends:  # open loop: the rate offered and completed, errors by status, and the verdict
        row = summarize(rate, sends, outcomes)
        run.update({k: row[k] for k in ("offered_per_s", "completed_per_s", "latency_ms",
                                        "latency_trend_ms", "sustained")},
                   errors_by_status=row["errors"])
    return run


def _mesh_config(workers: int, event_loop: str = "uvloop") -> Any:
    return load_mesh_config(None, environ={}, overrides={
        "workers": workers, "worker": {"max_inflight": 256}, "event_loop": event_loop,
        "sim_engine": {"zero_cost": True},
        # its own mesh on loopback, for its length; the calls are not cacheable (sampled)
        "gateway": {"allow_anonymous": True, "semantic_cache": False},
    })


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0.0 where /proc has none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _service_pids(mesh: Mesh, workers: int) -> dict[str, int]:
    names = ["gateway", "planner", *(f"{k}-{i}" for i in range(workers)
                                     for k in ("worker", "engine"))]
    pids = {n: mesh.child(n).pid for n in names}
    with contextlib.suppress(redis.RedisError):
        pids["redis"] = int(redis.Redis.from_url(mesh.endpoints.redis_url,
                                                 socket_timeout=2).info()["process_id"])
    return pids


def run_open_loop(rates: list[float], duration_s: float, workers: int, modes: list[str],
                  timeout_s: float = 10.0, event_loop: str = "uvloop") -> dict[str, Any]:
    """Every mode at every rate against one mesh, lowest rate first. Each row also has the
    CPU time each process spent per completed call (robust to other load on the machine,
    which the latencies are not). `event_loop`: the services' and the load generator's."""
    rows = []
    cfg = _mesh_config(workers, event_loop)
    with Mesh(cfg, ephemeral_ports=True) as mesh:
        pids = _service_pids(mesh, workers)
        for mode in modes:
            target = {"http": mesh.endpoints.gateway_http,
                      ENGINE_MODE: ",".join(mesh.endpoints.engines)}.get(mode, mesh.endpoints.gateway)
            for rate in rates:
                before = {n: _cpu_s(pid) for n, pid in pids.items()}
                row = run_rate(target, mode, rate, duration_s, timeout_s=timeout_s,
                               event_loop=event_loop)
                used = {n: _cpu_s(pid) - before[n] for n, pid in pids.items()}
                used["loadgen"] = row.pop("loadgen_cpu_s")
                done = row["completed"]
                row["cpu_ms_per_call"] = {n: round(1000 * s / done, 3) for n, s in used.items()} \
                    if done else None  # none completed: nothing to divide by
                if done:
                    row["cpu_ms_per_call"]["total"] = round(1000 * sum(used.values()) / done, 3)
                rows.append({"mode": mode, **row})
                print(_row_text(rows[-1]), flush=True)
    add_mesh_added(rows)
    return {"kind": "live-open-loop", "simulated": True, "engines": workers,
            "profile": "zero-cost sim engine", "policy": cfg.planner.policy,
            "event_loop": event_loop, "duration_s": duration_s, "timeout_s": timeout_s,
            "sustained_rule": {"completed_share": SUSTAINED_COMPLETED, "errors": 0,
                               "latency_p99_ms_max": SUSTAINED_P99_MS},
            "rows": rows}


def add_mesh_added(rows: list[dict[str, Any]]) -> None:
    """Where the run has the `engine` baseline at a row's rate, and both were sustained, the
    row gets `mesh_added_ms`: its overhead percentiles less the baseline's (a difference of
    percentiles, not a percentile of differences): what the mesh adds over calling the
    engine straight. A rate either did not sustain gets none (a review found a figure for a
    row of 990 errors and 10 answers)."""
    base = {r["offered_per_s"]: r["overhead_ms"] for r in rows
            if r["mode"] == ENGINE_MODE and r["sustained"]}
    for row in rows:
        if row["mode"] != ENGINE_MODE and row["offered_per_s"] in base and row["sustained"]:
            b = base[row["offered_per_s"]]
            row["mesh_added_ms"] = {q: round(v - b[q], 3) for q, v in row["overhead_ms"].items()}


def _row_text(row: dict[str, Any]) -> str:
    o = row["overhead_ms"]
    errors = ",".join(f"{k}:{v}" for k, v in sorted(row["errors"].items())) or "0"
    return (f"{row['mode']:>7} {row['offered_per_s']:>6g}/s offered {row['completed_per_s']:>7.1f}/s "
            f"completed  errors {errors:<12} overhead p50 {o['p50']:8.2f} p95 {o['p95']:8.2f} "
            f"p99 {o['p99']:8.2f} ms  {'sustained' if row['sustained'] else 'NOT sustained'}  "
            + (f"cpu {row['cpu_ms_per_call']['total']:.2f} ms/call" if row["cpu_ms_per_call"] else ""))


def _added_text(row: dict[str, Any]) -> str:
    a = row["mesh_added_ms"]
    return (f"{row['mode']:>7} {row['offered_per_s']:>6g}/s: the mesh adds p50 {a['p50']:.2f} "
            f"p95 {a['p95']:.2f} p99 {a['p99']:.2f} ms over the engine straight")


def _open_loop_command(args: argparse.Namespace) -> dict[str, Any]:
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not rates or min(rates) <= 0 or args.duration_s <= 0 or args.workers < 1:
        raise ValueError("--rates: positive calls per second; --duration-s and --workers > 0")
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"--modes: a list of {', '.join(MODES)}")
    print("live mesh on loopback, zero-cost SIMULATED engines, open loop (the mesh's own "
          "overhead):", flush=True)
    results = run_open_loop(rates, args.duration_s, args.workers, modes,
                            event_loop=getattr(args, "event_loop", "uvloop"))
    for row in results["rows"]:
        if "mesh_added_ms" in row:
            print(_added_text(row))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / 'results.json'}")
    return results


def live_command(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "rates", ""):
        return _open_loop_command(args)
    if args.calls < 1 or args.concurrency < 1 or args.workers < 1 or args.rate < 0:
        raise ValueError("--calls, --concurrency and --workers must be >= 1, --rate >= 0")
    modes = [m.strip() for m in args.tracing.split(",") if m.strip()]
    if not modes or any(m not in ("off", "file") for m in modes):
        raise ValueError("--tracing: a list of off and file")
    runs = [run_live(args.calls, args.concurrency, args.rate, args.workers, m) for m in modes]
    results: dict[str, Any] = {"kind": "live", "simulated": True, "engines": args.workers,
                               "profile": "zero-cost sim engine", "runs": runs}
    by_mode = {r["tracing"]: r for r in runs}
    if {"off", "file"} <= by_mode.keys():  # tracing's cost, as ratios within this one run
        on, off = by_mode["file"], by_mode["off"]
        results["tracing_ratio"] = {
            "calls_per_s": round(on["calls_per_s"] / max(off["calls_per_s"], 1e-9), 3),
            **{q: round(on["overhead_ms"][q] / max(off["overhead_ms"][q], 1e-9), 3)
               for q in ("p50", "p95", "p99")}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("live mesh on loopback, zero-cost SIMULATED engines (the mesh's own overhead):")
    for run in runs:
        print(json.dumps(run, indent=2))
    if "tracing_ratio" in results:
        print("tracing on / off:", json.dumps(results["tracing_ratio"]))
    print(f"wrote {out / 'results.json'}")
    return results
