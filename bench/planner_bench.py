"""`ostinato bench planner`: microseconds per dispatch decision of the pure PlannerCore.

Measured on this machine's CPU, in-process (no gRPC, no Redis): the planner core on a
ManualClock with `workers` workers of `budget` slots, several tenants (weights 1, 1, 2, 4),
2,000+ programs whose calls mostly extend a finished call of theirs (affinity parks them on
that call's worker, their home, as they are queued) and the queue held at a target depth.
Programs end as a service's do (EndProgram, one-call programs): each submits a number of
calls drawn from a seeded distribution (uniform 1 .. 2 x `program_calls` - 1, mean 40), and
once the last of them has ended the driver ends it with `PlannerCore.end_program` (the
core's path, which EndProgram takes), so that finished calls' records leave as they would in
a service; a new program of the same tenant and class takes its slot as soon as the old one
has submitted its last call, so the slots keep the bench's count (the core also holds the
ended-to-be programs still running calls) and the queue its depth. `program_calls` 0: the
programs never end (the driver of before, same decisions).
One decision: one running call completes (its worker frees a slot), one new call is
submitted (the queue stays at its depth), the clock moves on 1 ms, then the timed
`dispatch()` grants the freed slot: it reads that worker's lane of the queue and the global
lane (planner/core/queue.py), never the calls parked on full workers.

Steady state: the setup queues every call at once, parked on its home, so the first
decisions see a queue no user's planner holds (three in four calls parked, no call waiting
past its starvation bound or `max_home_wait_s`). `warmup` untimed decisions come first
(default max(WARMUP_MIN, WARMUP_PER_QUEUED x the depth): the queue turns over about once per
`queued` decisions, and after two turns the per-chunk p50/p99 no longer drift,
docs/bench/planner/results.md) and a full collection (the collector's state after a
while in service), then `decisions` timed ones, 1,200,000 by default: more than the period
of each of the collector's generations here but the full one's (with programs that end, at
10k queued a gen-0 collection comes about every 8,000 decisions, a gen-1 every 90,000, a full
one after more than ten gen-1s: one per window), so each runs inside the window.
Per policy and depth: p50, p99, p99.9, mean and max microseconds per decision over every
timed decision, the grants each decision made (every one should make exactly one), the
calls it parked on the way (`parked_per_decision`: calls of the global lane whose home
turned out full), and how p50/p99 grow with depth; `chunks` and `warmup_chunks` give p50,
p99 and max per CHUNK decisions, so that every run shows its own steady state. Wall time
counts whatever else the machine runs meanwhile (on a shared machine, a descheduled
decision reads milliseconds); `cpu_us_per_decision` is the thread's CPU time over the same
decisions, the work the planner itself did, and `cpu_us_per_cycle` that of the whole cycle
(the completion and the submission, which parks the new call, included), so that work moved
out of `dispatch()` still shows. `without_gc` leaves out the decisions during which Python's
garbage collector ran (wall p50/p99, and CPU `cpu_p50`/`cpu_p99`); `gc_runs_in_decisions`
counts those collections per generation, and `gc_runs_in_window` every collection of the
timed window (the cycles' other parts included), `gc_period_decisions` the decisions per
collection of each generation and `tracked_per_cycle` the tracked objects a cycle leaves
(allocations less deallocations: gen-0's threshold per gen-0 period).
Command (docs/bench/planner/results.md): `ostinato bench planner --queued
1000,10000,100000 --workers 64 --policies default`.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ostinato.clock import ManualClock
from ostinato.collector import freeze_after_start
from planner.core.planner import PlannerCore
from planner.core.selection import parse_policy

DEFAULT_POLICIES = ("default", "fcfs+round_robin", "plas+cache_aware")
DEFAULT_QUEUED = (1000, 10_000, 100_000)
TENANT_WEIGHTS = {"t0": 1.0, "t1": 1.0, "t2": 2.0, "t3": 4.0}
TENANTS = tuple(TENANT_WEIGHTS)
STEP_S = 0.001  # virtual time between decisions
BLOCKS = 16  # prompt blocks of a call (cache_aware's index)
WARMUP_MIN = 10_000  # untimed decisions first, at least ...
WARMUP_PER_QUEUED = 2  # ... and this many times the depth (two turns of the queue)
CHUNK = 5000  # decisions per entry of `chunks` / `warmup_chunks`


@dataclass(frozen=True)
class BenchConfig:
    workers: int = 64
    budget: int = 16  # slots per worker
    decisions: int = 1_200_000  # timed
    warmup: int | None = None  # untimed decisions first (None: warmup_for(queued))
    min_programs: int = 2000
    calls_per_program: int = 50  # more programs when the queue is deeper than this allows
    program_calls: int = 40  # mean calls a program submits before it ends (0: never ends)
    seed: int = 1

    def validate(self) -> None:
        if min(self.workers, self.budget, self.decisions, self.min_programs,
               self.calls_per_program) < 1:
            raise ValueError("--workers, --decisions and the bench sizes must be >= 1")
        if self.program_calls < 0:
            raise ValueError("--program-calls must be >= 0")
        if self.warmup is not None and self.warmup < 0:
            raise ValueError("--warmup must be >= 0")

    def warmup_for(self, queued: int) -> int:
        """Untimed decisions before the timed ones at this depth (module doc)."""
        if self.warmup is not None:
            return self.warmup
        return max(WARMUP_MIN, WARMUP_PER_QUEUED * queued)


@dataclass
class _Program:
    """The driver's view of a live program: its tenant, the calls it has still to submit
    (-1: no end) and those submitted that have not ended."""

    tenant: str
    left: int
    open: int = 0


class _Driver:
    """Keeps a planner core at a queue depth: submits calls, completes running ones."""

    def __init__(self, policy: str, queued: int, cfg: BenchConfig) -> None:
        self.rng = random.Random(cfg.seed)
        self.lengths = random.Random(f"{cfg.seed}/program-calls")  # the programs' lengths
        self.mean_calls = cfg.program_calls
        self.clock = ManualClock()
        priority, routing = parse_policy(policy)
        self.core = PlannerCore(self.clock, priority, routing, worker_ttl_s=float("inf"),
                                program_idle_ttl_s=float("inf"), tenant_weights=TENANT_WEIGHTS)
        for i in range(cfg.workers):
            self.core.upsert_worker(f"w{i:03d}", f"10.0.{i // 256}.{i % 256}:50061", cfg.budget)
        n_programs = max(cfg.min_programs, -(-queued // cfg.calls_per_program))
        self.programs: list[tuple[str, str]] = []  # the slots: the programs calls go to
        self.live: dict[str, _Program] = {}  # every program not yet ended
        self.anchor: dict[str, str] = {}  # program -> its first finished call
        self.started = self.ended = 0  # programs registered / ended after the setup's
        self.seq = 0
        self.running: list[tuple[str, str]] = []
        self.timing = self.collected = self.window = False
        self.gc_runs = [0, 0, 0]  # collections inside the timed dispatches, per generation
        self.gc_window = [0, 0, 0]  # every collection of the timed window, per generation
        for slot in range(n_programs):
            self.programs.append(("", ""))
            self._register(slot)
            if self.mean_calls:
                self._midlife(slot)
        self.started = 0
        # Every program's first call runs and finishes (spread over the workers): later calls
        # extend it, so it is their home.
        for slot in range(n_programs):
            self._submit(slot, "root", ())
        while self.core.queued:
            for g in self.core.dispatch():
                self._finish(g.program_id, g.call_id)
        self.core.take_events()
        while self.core.queued < queued + cfg.workers * cfg.budget:
            self.submit()
        self.running = [(g.program_id, g.call_id) for g in self.core.dispatch()]
        self.core.take_events()

    def _register(self, slot: int) -> None:
        """A new program in `slot` (its tenant and class are the slot's), that submits a
        number of calls drawn with mean `program_calls` (none: -1, it never ends)."""
        n = self.lengths.randint(1, 2 * self.mean_calls - 1) if self.mean_calls else -1
        pid, tenant = f"p{len(self.live) + self.ended:06d}", TENANTS[slot % len(TENANTS)]
        self.core.register_program(pid, tenant, program_class=f"class{slot % 5}")
        self.programs[slot] = (pid, tenant)
        self.live[pid] = _Program(tenant, n)
        self.started += 1

    def _midlife(self, slot: int) -> None:
        """The setup's programs start where the slots' steady state has them, not all at
        their first call (their ends would come in waves, one program's life apart: ~80,000
        decisions with 2,000 slots): a length drawn in proportion to its weight in that
        state (a longer program holds its slot longer), and a uniform part of it already
        submitted, recorded as done (calls the gateway served from its cache: the core's
        record of a finished call, without running it)."""
        top = 2 * self.mean_calls - 1
        length = self.lengths.choices(range(1, top + 1), weights=range(1, top + 1))[0]
        done = self.lengths.randrange(length)
        pid, tenant = self.programs[slot]
        for j in range(done):
            self.core.submit(pid, tenant, f"h{j}", prompt_tokens=2100, max_new_tokens=512,
                             served_from_cache=True)
        self.live[pid].left = length - done

    @staticmethod
    def _hashes(pid: str) -> tuple[int, ...]:
        base = int(pid[1:])  # one prefix per program, deterministic
        return tuple(base * 1000 + i for i in range(BLOCKS))

    def _submit(self, slot: int, call_id: str, parents: tuple[str, ...]) -> None:
        pid, tenant = self.programs[slot]
        if call_id == "root":  # the setup's first call of a program
            self.core.submit(pid, tenant, call_id, prompt_tokens=2000, max_new_tokens=256,
                             prefix_hashes=self._hashes(pid))
        else:
            self.core.submit(pid, tenant, call_id, thread_id=f"t{self.seq % 8}",
                             parents=parents, prompt_tokens=2100, max_new_tokens=512,
                             prefix_hashes=self._hashes(pid))
        program = self.live[pid]
        program.open += 1
        if program.left > 0:
            program.left -= 1
            if not program.left:  # its last call: a new program takes its slot
                self._register(slot)

    def _finish(self, program_id: str, call_id: str) -> None:
        rng = self.rng
        self.core.complete(program_id, call_id, service_s=rng.uniform(0.05, 2.0),
                           prompt_tokens=2000, completion_tokens=rng.randint(10, 400),
                           cached_tokens=1500)
        self.anchor.setdefault(program_id, call_id)
        program = self.live[program_id]
        program.open -= 1
        if not program.open and not program.left:  # its last call ended: so does it, as
            # EndProgram (planner/service.py) or a one-call program's end ends it
            self.core.end_program(program_id, program.tenant)
            del self.live[program_id]
            self.anchor.pop(program_id, None)
            self.ended += 1

    def submit(self) -> None:
        slot = self.rng.randrange(len(self.programs))
        self.seq += 1
        with_parent = self.rng.random() < 0.7
        anchor = self.anchor.get(self.programs[slot][0])
        self._submit(slot, f"c{self.seq}", (anchor,) if with_parent and anchor else ())

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks: whether a collection ran inside the timed dispatch (and which), and
        the collections of the timed window."""
        if phase != "start" or not self.window:
            return
        self.gc_window[info["generation"]] += 1
        if self.timing:
            self.collected = True
            self.gc_runs[info["generation"]] += 1

    def decision(self) -> tuple[float, float, float, int, int]:
        """One completion, one submission, then the timed dispatch: (wall µs, CPU µs,
        CPU µs of the whole cycle, grants, calls the dispatch parked on the way)."""
        i = self.rng.randrange(len(self.running))
        self.running[i], self.running[-1] = self.running[-1], self.running[i]
        cycle0 = time.thread_time_ns()
        self._finish(*self.running.pop())
        self.submit()
        self.clock.advance(STEP_S)
        self.collected, self.timing = False, True
        parked = self.core.calls_parked
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        grants = self.core.dispatch()
        dt = (time.perf_counter_ns() - t0) / 1000.0
        c1 = time.thread_time_ns()
        self.timing = False
        self.running += [(g.program_id, g.call_id) for g in grants]
        self.core.take_events()
        return (dt, (c1 - c0) / 1000.0, (c1 - cycle0) / 1000.0, len(grants),
                self.core.calls_parked - parked)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _chunks(times: Sequence[float]) -> list[dict[str, float]]:
    """p50, p99 and max wall µs per CHUNK decisions, in order (the drift, or its absence)."""
    out = []
    for i in range(0, len(times), CHUNK):
        chunk = sorted(times[i:i + CHUNK])
        out.append({"decisions": i + len(chunk), "p50": round(_percentile(chunk, 0.5), 1),
                    "p99": round(_percentile(chunk, 0.99), 1), "max": round(chunk[-1])})
    return out


def _stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": round(_percentile(values, 0.5), 2), "p99": round(_percentile(values, 0.99), 2),
            "p999": round(_percentile(values, 0.999), 2)}


def run_one(policy: str, queued: int, cfg: BenchConfig) -> dict[str, Any]:
    driver = _Driver(policy, queued, cfg)
    times, cpus, cycles, grants, quiet, quiet_cpu, parks = [], [], [], [], [], [], []
    warmup = cfg.warmup_for(queued)
    warm_times: list[float] = []
    # The setup's objects go to the permanent generation, as the planner service freezes
    # what it holds once started (the same function); the collector stays on, with CPython's
    # default thresholds, for what the decisions allocate (the warm-up's included), and the
    # decisions that a collection ran inside are counted (and left out of `without_gc`).
    freeze_after_start()
    gc.callbacks.append(driver.on_gc)
    try:
        for _ in range(warmup):  # untimed: the queue reaches its steady state
            warm_times.append(driver.decision()[0])
        # ... and the collector its own: a full collection, as a service that has run a while
        # has had, sets the oldest generation's size, which spaces the next full ones (one
        # comes once a quarter of it has joined it since); the freeze's, the setup's whole
        # heap, would put them far beyond the window
        gc.collect()
        driver.window = True
        started, ended = driver.started, driver.ended
        for _ in range(cfg.decisions):
            dt, cpu, cycle, n, parked = driver.decision()
            parks.append(parked)
            times.append(dt)
            cpus.append(cpu)
            cycles.append(cycle)
            grants.append(n)
            if not driver.collected:
                quiet.append(dt)
                quiet_cpu.append(cpu)
        driver.window = False
    finally:
        gc.callbacks.remove(driver.on_gc)
        gc.unfreeze()
    started, ended = driver.started - started, driver.ended - ended
    chunks = _chunks(times)
    wall = _stats(times)
    quiet.sort()
    quiet_cpu.sort()
    parks.sort()
    return {
        "policy": policy, "queued": queued, "queued_after": driver.core.queued,
        "programs": len(driver.programs), "programs_open_after": driver.core.programs_open,
        "programs_in_window": {"registered": started, "ended": ended},
        "warmup_decisions": warmup, "decisions": cfg.decisions,
        "us_per_decision": {**wall, "mean": round(statistics.fmean(times), 2),
                            "max": round(max(times), 2)},
        "cpu_us_per_decision": _stats(cpus),
        "cpu_us_per_cycle": _stats(cycles),
        "without_gc": {"decisions": len(quiet),
                       "p50": round(_percentile(quiet, 0.5), 2) if quiet else None,
                       "p99": round(_percentile(quiet, 0.99), 2) if quiet else None,
                       "cpu_p50": round(_percentile(quiet_cpu, 0.5), 2) if quiet else None,
                       "cpu_p99": round(_percentile(quiet_cpu, 0.99), 2) if quiet else None},
        "gc_runs_in_decisions": dict(zip(("gen0", "gen1", "gen2"), driver.gc_runs,
                                         strict=True)),
        "gc_runs_in_window": dict(zip(("gen0", "gen1", "gen2"), driver.gc_window, strict=True)),
        # decisions per collection of each generation, and the tracked objects a cycle leaves
        # (allocations less deallocations, as the collector counts them: gen-0's threshold per
        # gen-0 period)
        "gc_period_decisions": {g: round(cfg.decisions / n) if n else None for g, n in
                                zip(("gen0", "gen1", "gen2"), driver.gc_window, strict=True)},
        "tracked_per_cycle": round(gc.get_threshold()[0] * driver.gc_window[0] / cfg.decisions,
                                   3),
        "grants_per_decision": {"min": min(grants), "max": max(grants)},
        "parked_per_decision": {"p50": _percentile(parks, 0.5), "p99": _percentile(parks, 0.99),
                                "mean": round(statistics.fmean(parks), 3), "max": parks[-1]},
        "decisions_granting_one": sum(1 for n in grants if n == 1),
        "chunks": chunks,
        "warmup_chunks": _chunks(warm_times),
    }


def planner_bench(queued: tuple[int, ...] = DEFAULT_QUEUED,
                  policies: tuple[str, ...] = DEFAULT_POLICIES,
                  cfg: BenchConfig = BenchConfig()) -> dict[str, Any]:
    cfg.validate()
    if not queued or min(queued) < 1:
        raise ValueError("--queued: give one or more depths >= 1")
    for policy in policies:
        parse_policy(policy)
    runs = [run_one(policy, depth, cfg) for policy in policies for depth in queued]
    growth: dict[str, dict[str, float]] = {}
    lo, hi = min(queued), max(queued)
    for policy in policies:
        by_depth = {r["queued"]: r["us_per_decision"] for r in runs if r["policy"] == policy}
        if hi > lo:
            growth[policy] = {
                f"p50_x_at_{hi}_vs_{lo}": round(by_depth[hi]["p50"] / by_depth[lo]["p50"], 3),
                f"p99_x_at_{hi}_vs_{lo}": round(by_depth[hi]["p99"] / by_depth[lo]["p99"], 3),
                "queue_x": hi / lo,
            }
    return {"kind": "planner", "measured": "wall-clock µs per PlannerCore.dispatch() on this "
                                          "CPU, in-process",
            "workers": cfg.workers, "budget_per_worker": cfg.budget,
            "tenants": TENANT_WEIGHTS, "decisions_per_run": cfg.decisions,
            "warmup": cfg.warmup if cfg.warmup is not None else
            f"max({WARMUP_MIN}, {WARMUP_PER_QUEUED} x queued)",
            "runs": runs, "growth": growth}


def planner_command(args: Any) -> dict[str, Any]:
    try:
        queued = tuple(int(x) for x in str(args.queued).split(",") if x.strip())
    except ValueError:
        raise ValueError("--queued: expected comma-separated integers") from None
    policies = tuple(p.strip() for p in str(args.policies).split(",") if p.strip())
    cfg = BenchConfig(workers=args.workers, decisions=args.decisions,
                      warmup=getattr(args, "warmup", None),
                      program_calls=getattr(args, "program_calls", BenchConfig.program_calls))
    results = planner_bench(queued, policies, cfg)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results
