"""`ostinato bench soak` (`make soak`): the whole mesh as real processes (embedded Redis,
SIMULATED engines, workers, planner, gateway) under a long run of calls, with faults injected
on a schedule: a worker, an engine and the planner SIGKILLed and restarted on their ports,
Redis stopped and started again from its append-only file, the gateway SIGKILLed and
restarted.

What it reports, truthfully (a lost call is never counted as completed):
- every call accounted for: each ends "ok" or with the gRPC status it failed with
  (bench/soak_load.py); failures are attributed to the fault in progress, if any;
- nothing duplicated: no call with two outcomes, and no program whose summary (EndProgram)
  counts more completed calls than were answered, beyond answers lost on their way back
  (calls that failed here but are "done" in the planner's records in Redis);
- the records agree: every answered call "done" in Redis, no summary short of the answers;
  the engines' completed requests (summed over engine restarts) are reported beside;
- every service's memory (VmRSS): flat if it grew at most `late_bound_kib` per 1,000 calls
  over the late window (from `late_from` of the calls to the end; Redis beyond the records it
  keeps); the growth from the warm-up on is reported beside it. Bounded caches (the engines'
  prefix caches, the workers' KV-event translator and recent reports, the engines' event
  rings) must have filled before the late window: a small pool (`kv_tokens`) and a long run
  (40,000 calls), see docs/bench/soak/README.md.
`memtrace`: a debug aid (bench/memtrace): tracemalloc snapshots and structure sizes of the
workers and engines every 10 s.
Faults fire when a fraction of the calls have finished; each service's memory is sampled
every `sample_every` of the calls (bench/soak_checks.py turns samples into verdicts).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.soak_checks import LATE_BOUND_KIB, memory_report, reconcile
from bench.soak_load import CallOutcome, Load
from cache import keys
from gateway.auth import DEFAULT_TENANT
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh, MeshStartError
from ostinato.program_ids import inner_id

TARGETS = ("worker", "engine", "planner", "redis", "gateway")
DEFAULT_FAULTS = "worker@0.15,engine@0.25,planner@0.35,redis@0.45,gateway@0.55"


@dataclass(frozen=True)
class Fault:
    target: str  # one of TARGETS: worker-0, engine-0, the planner, Redis, the gateway
    at: float  # when this fraction of the calls have finished


def parse_faults(text: str) -> list[Fault]:
    """"worker@0.15,redis@0.4": target@fraction, in any order; "" for none."""
    faults = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        target, _, at = part.partition("@")
        try:
            fault = Fault(target, float(at))
        except ValueError:
            raise ValueError(f"--faults: {part!r} is not target@fraction") from None
        if target not in TARGETS or not 0.0 <= fault.at < 1.0:
            raise ValueError(f"--faults: {part!r}: target one of {', '.join(TARGETS)}, "
                             "fraction in [0, 1)")
        faults.append(fault)
    return sorted(faults, key=lambda f: f.at)


@dataclass(frozen=True)
class SoakOptions:
    calls: int = 10_000
    concurrency: int = 200  # programs running at once
    calls_per_program: int = 10
    one_call: bool = False  # bare Calls (one-call programs) instead of programs
    workers: int = 4
    faults: tuple[Fault, ...] = tuple(parse_faults(DEFAULT_FAULTS))
    down_s: float = 1.0  # how long a faulted service stays down
    time_scale: float = 0.05  # sim engines' real seconds per simulated second; 0: zero cost
    kv_tokens: int = 0  # sim engines' KV pool in tokens (0: the profile's); small: caches fill
    timeout_s: float = 1800.0  # calls without an outcome by then are reported as hung
    call_timeout_s: float = 60.0  # each RPC's deadline (DEADLINE_EXCEEDED past it)
    rss_bound_mib: float = 16.0  # first rule: RSS grew at most this from the warm-up on
    late_from: float = 0.5  # the late window: from this fraction of the calls to the end
    late_bound_kib: float = LATE_BOUND_KIB  # "flat": RSS grew at most this per 1,000 calls there
    sample_every: float = 0.05
    warmup: float = 0.1  # memory is measured from this fraction of the calls after a start
    semantic_cache: bool = True  # the gateway loads its embedding model (realistic restarts)
    workdir: str = ""  # keep the mesh's logs here ("": a temporary directory)
    config: str = ""  # a mesh config file under the soak's own settings (e.g. planner.*)
    memtrace: str = ""  # tracemalloc snapshots of workers and engines here (bench/memtrace)


@dataclass
class FaultEvent:
    target: str
    at: float  # fraction of calls finished when it fired
    down_at: float  # time.monotonic()
    back_at: float = 0.0
    restart_s: float = 0.0  # from the restart command to the service serving again
    error: str = ""  # the restart failed (the service stays down)


@dataclass
class Monitor:
    """RSS samples of every service, and the engines' completed requests over restarts."""

    mesh: Mesh
    samples: list[dict[str, Any]] = field(default_factory=list)
    engine_completed: dict[str, float] = field(default_factory=dict)  # by engine restarts
    kv_usage: dict[str, float] = field(default_factory=dict)  # engine -> KV pool in use, last

    redis_data_kib: int = 0  # Redis's INFO used_memory_dataset at the last sample

    def services(self) -> dict[str, int]:
        cfg = self.mesh.config
        names = ["gateway", "planner", *(f"{k}-{i}" for i in range(cfg.workers)
                                         for k in ("worker", "engine"))]
        pids = {n: self.mesh.child(n).pid for n in names if self.mesh.child(n).poll() is None}
        try:
            info = redis.Redis.from_url(self.mesh.endpoints.redis_url, socket_timeout=2).info()
            pids["redis"] = int(info["process_id"])
            self.redis_data_kib = int(info.get("used_memory_dataset", 0)) // 1024
        except redis.RedisError:
            pass  # stopped by a fault: no sample this time
        return pids

    def sample(self, progress: float) -> None:
        for name, pid in self.services().items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            kib = next(int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:"))
            self.samples.append({"service": name, "pid": pid, "progress": round(progress, 4),
                                 "rss_kib": kib,
                                 # the records Redis holds (ended programs' are kept for
                                 # planner.ended_program_ttl_s): its growth by design
                                 **({"data_kib": self.redis_data_kib} if name == "redis" else {})})

    def count_engine(self, index: int) -> None:
        """Adds engine `index`'s completed requests so far (before it is killed, and at the
        end): the counter starts again from zero in a restarted engine."""
        url = self.mesh.endpoints.engines[index]
        text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in ("sglang:num_requests_total", "sglang:num_aborted_requests_total"):
                    key = s.name.removeprefix("sglang:num_").removesuffix("_total")
                    self.engine_completed[key] = self.engine_completed.get(key, 0) + s.value
                elif s.name == "sglang:token_usage":  # a filling prefix cache grows its RSS
                    self.kv_usage[f"engine-{index}"] = round(s.value, 4)


def _inject(mesh: Mesh, monitor: Monitor, fault: Fault, progress: float,
            down_s: float) -> FaultEvent:
    event = FaultEvent(fault.target, round(progress, 4), time.monotonic())
    name = {"worker": "worker-0", "engine": "engine-0"}.get(fault.target, fault.target)
    if fault.target == "redis":
        mesh.stop_redis()
    else:
        if fault.target == "engine":
            monitor.count_engine(0)
        mesh.kill(name)
    time.sleep(down_s)  # the outage itself
    started = time.monotonic()
    try:
        if fault.target == "redis":
            mesh.start_redis()
        else:
            mesh.restart(name)
    except (MeshStartError, RuntimeError, OSError) as exc:
        event.error = str(exc)[-500:]
    event.back_at = time.monotonic()
    event.restart_s = round(event.back_at - started, 3)
    return event


def _records(redis_url: str, program_ids: list[str],
             tenant: str | None = None) -> dict[str, dict[str, str]]:
    """The planner's persisted call states: program -> call id -> state. `tenant`: the
    ids are that tenant's clients' (the planner's are inside it: ostinato/program_ids.py);
    None: the planner's own."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    pipe = r.pipeline(transaction=False)
    for pid in program_ids:
        pipe.hgetall(keys.program_calls(pid if tenant is None else inner_id(tenant, pid)))
    return {pid: {cid: json.loads(raw).get("state", "") for cid, raw in calls.items()}
            for pid, calls in zip(program_ids, pipe.execute(), strict=True)}


def _one_call_records(redis_url: str) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """One-call programs (named by the gateway, not the load): every program of the default
    tenant read, its calls' states by call id under program "" (as the load records them);
    and how many programs there were, and the call ids recorded in more than one program."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    program_ids = [str(p) for p in r.zrange(keys.tenant_programs(DEFAULT_TENANT), 0, -1)]
    states: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for calls in _records(redis_url, program_ids).values():
        for call_id, state in calls.items():
            seen[call_id] += 1
            states[call_id] = state
    twice = sorted(c for c, n in seen.items() if n > 1)
    return {"": states}, {"programs": len(program_ids), "calls_in_two_programs": len(twice),
                          "calls_in_two_programs_first": twice[:20]}


def _settled_one_call_records(redis_url: str, outcomes: list[CallOutcome],
                              every_s: float = 1.0, tries: int = 10) -> tuple[Any, Any]:
    """`_one_call_records` once they settle: a one-call program is written when it ends,
    behind its answer (its outcome report batched, then the planner's write), so the last
    answers' records land a little after the load ends. Read until every answered call has
    a "done" record or the count missing stops changing (at most `tries` reads)."""
    answered = [o.call_id for o in outcomes if o.outcome == "ok"]
    missing = -1
    for _ in range(tries):
        records, info = _one_call_records(redis_url)
        now_missing = sum(records[""].get(c) != "done" for c in answered)
        if now_missing in (0, missing):
            break
        missing = now_missing
        time.sleep(every_s)
    return records, info


def _memtrace_env(directory: str) -> dict[str, str]:
    """The children's environment for bench/memtrace/sitecustomize.py (debug only)."""
    if not directory:
        return {}
    here = str(Path(__file__).parent / "memtrace")
    path = os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH", ""))))
    return {"MEMTRACE_DIR": str(Path(directory).resolve()), "PYTHONPATH": path}


def run_soak(opts: SoakOptions) -> dict[str, Any]:
    with mock.patch.dict(os.environ, _memtrace_env(opts.memtrace)):  # the children inherit it
        return _run_soak(opts)


def _run_soak(opts: SoakOptions) -> dict[str, Any]:
    cfg = load_mesh_config(opts.config or None, environ={}, overrides={
        "workers": opts.workers,
        "sim_engine": {"max_total_tokens": opts.kv_tokens,
                       **({"zero_cost": True} if opts.time_scale == 0 else
                          {"time_scale": opts.time_scale})},
        "gateway": {"allow_anonymous": True, "semantic_cache": opts.semantic_cache},
    })
    with Mesh(cfg, ephemeral_ports=True, workdir=opts.workdir or None) as mesh:
        monitor = Monitor(mesh)
        monitor.sample(0.0)
        load = Load(mesh.endpoints.gateway, opts.calls, opts.concurrency, opts.calls_per_program,
                    rpc_timeout_s=opts.call_timeout_s, one_call=opts.one_call)
        thread = threading.Thread(target=load.run, name="soak-load", daemon=True)
        start = time.monotonic()
        thread.start()
        events = _drive(mesh, monitor, load, thread, opts, start + opts.timeout_s)
        not_fired = [asdict(f) for f in opts.faults[len(events):]]  # the load ended first
        wall = time.monotonic() - start
        hung = opts.calls - load.finished
        monitor.sample(load.finished / opts.calls)
        for i in range(cfg.workers):
            monitor.count_engine(i)
        if opts.one_call:
            records, one_call_records = _settled_one_call_records(mesh.endpoints.redis_url,
                                                                  load.outcomes)
        else:
            records, one_call_records = _records(mesh.endpoints.redis_url, list(load.programs),
                                                     DEFAULT_TENANT), {}
    thread.join(30)  # the mesh is stopped: anything still waiting fails now
    results = {
        "kind": "soak", "simulated": True,
        "options": {**asdict(opts), "faults": [asdict(f) for f in opts.faults]},
        "wall_s": round(wall, 1), "calls_per_s": round(opts.calls / wall, 1) if wall else 0.0,
        "hung": hung, "load_errors": load.errors,
        # times in seconds from the start of the load
        "faults": [{**asdict(e), "down_at": round(e.down_at - start, 3),
                    "back_at": round(e.back_at - start, 3)} for e in events],
        "faults_not_fired": not_fired,
        "failed_calls": [[o.program_id, o.call_id, o.outcome, round(o.started - start, 3),
                          round(o.finished - start, 3)] for o in load.outcomes if o.outcome != "ok"],
        **reconcile(load.outcomes[:opts.calls - hung] if hung else load.outcomes,
                    load.programs, records, events, monitor.engine_completed, opts.calls, start),
        "one_call_records": one_call_records,
        "memory": memory_report(monitor.samples, opts.calls, opts.warmup, opts.rss_bound_mib,
                                opts.late_from, opts.late_bound_kib),
        "memory_samples": monitor.samples,
        "engine_kv_usage": monitor.kv_usage,
        # answered calls per worker, all and after the last fault: where the load went
        "ok_by_worker": _by_worker(load.outcomes, 0.0),
        "ok_by_worker_after_faults": _by_worker(load.outcomes, events[-1].back_at if events else 0.0),
    }
    results["checks"].update(memory_flat=results["memory"]["flat"],
                             no_restart_failed=not any(e.error for e in events),
                             load_ran=not load.errors)
    if one_call_records.get("calls_in_two_programs"):  # a call run as two programs
        results["checks"]["records_agree"] = False
    return results


def _by_worker(outcomes: list[CallOutcome], since: float) -> dict[str, int]:
    return dict(sorted(Counter(o.worker_id for o in outcomes
                               if o.outcome == "ok" and o.started >= since).items()))


def _drive(mesh: Mesh, monitor: Monitor, load: Load, thread: threading.Thread,
           opts: SoakOptions, deadline: float) -> list[FaultEvent]:
    """The main thread's loop while the load runs: faults when due, memory samples."""
    pending, events = list(opts.faults), []
    next_sample = opts.sample_every
    while thread.is_alive() and time.monotonic() < deadline:
        progress = load.finished / opts.calls
        if pending and progress >= pending[0].at:
            events.append(_inject(mesh, monitor, pending.pop(0), progress, opts.down_s))
        elif progress >= next_sample:
            monitor.sample(progress)
            next_sample += opts.sample_every
        else:
            thread.join(0.05)
    return events


def soak_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench.soak_report import print_report

    if min(args.calls, args.programs, args.calls_per_program, args.workers) < 1:
        raise ValueError("--calls, --programs, --calls-per-program and --workers must be >= 1")
    opts = SoakOptions(calls=args.calls, concurrency=args.programs,
                       calls_per_program=args.calls_per_program, one_call=args.one_call,
                       workers=args.workers,
                       faults=tuple(parse_faults(args.faults)), down_s=args.down_s,
                       time_scale=args.time_scale, kv_tokens=args.kv_tokens,
                       timeout_s=args.timeout_s,
                       rss_bound_mib=args.rss_bound_mib,
                       semantic_cache=not args.no_semantic_cache, workdir=args.workdir,
                       config=args.config, memtrace=args.memtrace)
    results = run_soak(opts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"wrote {out}")
    return results
