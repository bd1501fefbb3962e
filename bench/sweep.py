"""`ostinato bench sim`: every (policy, rate) run of a sweep, in parallel processes, then
results.json, a Markdown table and plots. SIMULATED (sim engines in virtual time).

Every (policy, rate) run is a steady state (../shared/workload-spec.md): arrivals keep coming,
the programs arriving in a window of `window_s` after a settling period are measured, and the
run ends when they have all finished or at a horizon. The tool chooses both from an unloaded
reference run (`fcfs+round_robin` at a twentieth of the lowest rate, where nothing queues),
whose p99 program latency L it measures first:

- settling period = max(SETTLE_MIN_S, SETTLE_P99S x L): queues and caches reach their level
  before measuring starts;
- horizon = window end + max(DRAIN_MIN_S, DRAIN_P99S x L): a measured program arriving last
  gets many times the unloaded p99 to finish; one still running then is not completed, and
  the run is not stable. Generous on purpose: the longest programs (a 64-call ReAct agent,
  a 32-turn chat) take several times the p99, and with 6 x L (174 s on `mixed`) one such
  program arriving at the window's end left round robin "unstable" at 12/s, where every
  other figure showed it sustaining the rate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import ClusterConfig, ClusterSim, Learned
from bench.programs import generate, stream
from bench.results import capacity, code_commit, summarize, sustained_throughput
from bench.sim_run import SteadyState
from bench.spec import SpecError, WorkloadSpec
from bench.sweep_runs import Bar, init_worker, tick, wait_runs
from planner.core.selection import parse_policy
from workers.sim.cost_model import load_profile

BASELINE = "fcfs+round_robin"
BARE_DEFAULT = frozenset({"fcfs+round_robin", "fcfs+cache_aware"})  # `--bare`'s default
TARGET_LOAD = 0.8  # issue #5's latency targets hold at this share of the baseline's capacity
UNLOADED_RATE_DIVISOR = 20.0  # the unloaded reference runs at min(rates) / this
UNLOADED_PROGRAMS = 200
# the unloaded reference's engines busy more than this: it queued, and its latency (the
# capacity limit's unit) is a loaded one, which loosens the limit for every policy (bench
# review 2026-12-08 F5: 0.92 busy with --rates starting at 120/s): the results say so
UNLOADED_MAX_UTILIZATION = 0.3
WARMUP_SEED_OFFSET = 1000  # warm-up programs come from another seed: never the measured ones
WARMUP_RATE_DIVISOR = 2.0  # ... arriving at min(rates) / this
SETTLE_MIN_S, SETTLE_P99S = 60.0, 2.0  # settling period: max(60 s, 2 x unloaded p99)
DRAIN_MIN_S, DRAIN_P99S = 300.0, 10.0  # horizon: window end + max(300 s, 10 x unloaded p99)


@dataclass(frozen=True)
class SweepConfig:
    policies: tuple[str, ...]
    rates: tuple[float, ...]
    engines: int = 8
    profile: str = "h100-llama3.1-8b"
    budget: int = 32
    slo_factor: float = 5.0
    jobs: int = 2
    # Programs run through the planner before each measured run, so that its learned
    # estimates (output lengths, program sizes per class) are those of a planner in service;
    # 0: every run starts cold.
    warmup_programs: int = 300
    # Per-policy budgets, overriding `budget` (each policy at the budget that suits it: the
    # baselines model engines without a planner cap, `default` holds low-priority work back).
    policy_budgets: tuple[tuple[str, int], ...] = ()
    window_s: float = 300.0  # the measured window of each steady-state run (simulated s)
    # Policies run as bare routers: without the planner's program admission and tenant
    # shares (planner/core/admission.py, tenants.py: no backlog bound, no room held for a
    # tenant below its share, no isolating budget), as the systems the baselines stand for
    # (a Kubernetes Service, SGLang's router) have none. The queue's fair-share order stays
    # (calls rarely wait in the planner's queue at an engine-sized budget).
    bare: frozenset[str] = BARE_DEFAULT

    def is_bare(self, policy: str) -> bool:
        return policy in self.bare

    def budget_for(self, policy: str) -> int | None:
        """The planner's budget of calls in flight per engine; None for no cap: a bare
        router, which sends each call on at once (the engine's own `max_running_requests`
        and waiting queue do the rest, as behind SGLang's router or a Kubernetes Service),
        or a budget of NO_CAP."""
        if self.is_bare(policy):
            return None
        budget = dict(self.policy_budgets).get(policy, self.budget)
        return None if budget == NO_CAP else budget

    def validate(self) -> None:
        if not self.policies:
            raise SpecError("--policies: give at least one policy")
        for p in self.policies:
            try:
                parse_policy(p)
            except ValueError as exc:
                raise SpecError(f"--policies: {exc}") from None
        if not self.rates or any(r <= 0 for r in self.rates):
            raise SpecError("--rates: give one or more positive rates")
        if self.engines < 1 or self.budget < NO_CAP or self.jobs < 1:
            raise SpecError("--engines and --jobs must be >= 1, --budget >= 0 (0: none)")
        for policy, budget in self.policy_budgets:
            if policy not in self.policies:
                raise SpecError(f"--budget: {policy!r} is not one of --policies")
            if self.is_bare(policy):
                raise SpecError(f"--budget: {policy} runs bare (--bare): a router has no "
                                "planner budget")
            if budget < NO_CAP:
                raise SpecError(f"--budget: {policy}={budget} must be >= 0 (0: none)")
        if self.warmup_programs < 0:
            raise SpecError("--warmup must be >= 0")
        if self.slo_factor <= 1:
            raise SpecError("--slo-factor must be > 1")
        if self.window_s <= 0:
            raise SpecError("--window-s must be > 0")
        load_profile(self.profile)


REFERENCE = "reference"  # one engine with an unbounded cache: the most prefix reuse possible
UNBOUNDED_KV = 1 << 40
ROUTER_BUDGET = 1 << 20  # no cap (a bare router's): every call sent on as it comes
NO_CAP = 0  # `--budget none` (or 0): the planner grants every call at once, as routers send


def cluster_for(policy: str, cfg: SweepConfig, spec: WorkloadSpec) -> tuple[str, ClusterConfig]:
    """The policy to run (a name the planner core takes) and its cluster: a bare router's
    (cfg.is_bare), or the planner's with everything on."""
    weights = {t.name: t.weight for t in spec.tenants}
    if policy == REFERENCE:
        return BASELINE, ClusterConfig(engines=1, budget=ROUTER_BUDGET, max_running_requests=1 << 20,
                                       kv_tokens=UNBOUNDED_KV, tenant_weights=weights)
    if cfg.is_bare(policy):  # no planner cap, no program admission, no tenant shares
        return policy, ClusterConfig(engines=cfg.engines, budget=ROUTER_BUDGET,
                                     tenant_weights=weights, program_kv_fraction=0.0,
                                     isolation_fraction=1.0, tenant_shares="off")
    return policy, ClusterConfig(engines=cfg.engines,
                                 budget=cfg.budget_for(policy) or ROUTER_BUDGET,
                                 tenant_weights=weights)


def warm_up(spec: WorkloadSpec, cfg: SweepConfig) -> Learned | None:
    """Runs `cfg.warmup_programs` programs of another seed at a light load; returns what the
    planner learned. The learned estimates do not depend on the policy that ran them."""
    if cfg.warmup_programs == 0:
        return None
    warm = spec.with_overrides(seed=spec.seed + WARMUP_SEED_OFFSET, programs=cfg.warmup_programs,
                               rate=min(cfg.rates) / WARMUP_RATE_DIVISOR)
    policy, cluster = cluster_for(BASELINE, cfg, spec)
    sim = ClusterSim(generate(warm), policy, load_profile(cfg.profile), cluster)
    sim.run()
    return sim.learned()


def steady_state(unloaded_p99_s: float, window_s: float) -> SteadyState:
    """The measured window and horizon, from the unloaded p99 program latency (module doc)."""
    settle = max(SETTLE_MIN_S, SETTLE_P99S * unloaded_p99_s)
    end = settle + window_s
    return SteadyState((settle, end), end + max(DRAIN_MIN_S, DRAIN_P99S * unloaded_p99_s))


def run_one(spec: WorkloadSpec, policy: str, rate: float, cfg: SweepConfig,
            learned: Learned | None = None, steady: SteadyState | None = None) -> dict[str, Any]:
    """One run: steady-state when `steady` is given, else the spec's finite batch."""
    spec = spec.with_overrides(rate=rate)
    label = policy
    policy, cluster = cluster_for(policy, cfg, spec)
    programs = stream(spec) if steady is not None else generate(spec)
    sim = ClusterSim(programs, policy, load_profile(cfg.profile), cluster, learned, steady)
    run = sim.run(progress=tick)
    result = summarize(run, label if label != REFERENCE else policy, rate)
    result["budget_per_engine"] = cfg.budget_for(label) if label != REFERENCE else None
    # the simulator's speed: simulated seconds per wall second of this run (issue #17), and
    # per CPU second (what other processes on the machine do not change much)
    result["sim_s_per_wall_s"] = round(result["simulated_s"] / max(result["sim_wall_s"], 1e-3), 2)
    result["sim_cpu_s"] = round(run.cpu_s, 3)
    result["sim_s_per_cpu_s"] = round(result["simulated_s"] / max(run.cpu_s, 1e-3), 2)
    return result


def run_sweep(spec: WorkloadSpec, cfg: SweepConfig, *, progress: Any = sys.stderr) -> dict[str, Any]:
    cfg.validate()
    start = time.monotonic()
    unloaded_rate = min(cfg.rates) / UNLOADED_RATE_DIVISOR
    unloaded_spec = spec.with_overrides(programs=min(spec.programs, UNLOADED_PROGRAMS))
    unloaded = run_one(unloaded_spec, BASELINE, unloaded_rate, cfg)
    steady = steady_state(unloaded["program_latency_s"]["p99"], cfg.window_s)
    if unloaded["engine_utilization"] > UNLOADED_MAX_UTILIZATION and progress is not None:
        print(f"warning: the unloaded reference (at {unloaded_rate:g}/s, the lowest rate / "
              f"{UNLOADED_RATE_DIVISOR:g}) kept its engines {unloaded['engine_utilization']:.0%} "
              "busy: it queued, and the capacity limit is loose; start --rates lower",
              file=progress)
    jobs: list[tuple[WorkloadSpec, str, float, SteadyState | None]] = [
        (spec, REFERENCE, min(cfg.rates), None)]
    jobs += [(spec, p, r, steady) for p in cfg.policies for r in cfg.rates]
    total = spec.programs + int(sum(r * steady.horizon for _, _, r, _ in jobs[1:]))
    bar = Bar(total, progress)
    # not "fork": a run's child forked from a process with threads (gRPC's, a span
    # exporter's: `make test`'s workers, a service) inherits their objects but not the
    # threads, and hung for good in a finalizer joining one (seen in `make test`); the
    # fork server's children come from a process that ran nothing else
    ctx = mp.get_context("forkserver")
    counter, stop = ctx.Value("q", 0), ctx.Value("b", 0)
    learned = warm_up(spec, cfg)
    with ProcessPoolExecutor(cfg.jobs, mp_context=ctx, initializer=init_worker,
                             initargs=(counter, stop)) as pool:
        futures = [pool.submit(run_one, s, p, r, cfg, learned, st) for s, p, r, st in jobs]
        results = wait_runs(futures, stop, counter, bar)
        bar.draw(total, len(futures), len(futures))
        bar.close()
        single, runs = results[0], results[1:]
        reference = unloaded["normalized_latency_s_per_token"]["mean"]
        limit = cfg.slo_factor * reference
        caps, bounded = _capacities(runs, cfg.policies, limit)
        class_limits = {c: cfg.slo_factor * v["normalized_latency_s_per_token"]["mean"]
                        for c, v in unloaded["per_class"].items()}
        point = None
        if caps.get(BASELINE) and bounded[BASELINE]:
            rate = round(TARGET_LOAD * caps[BASELINE], 6)
            at = [p for p in (BASELINE, "default", "clairvoyant") if p in cfg.policies]
            at_runs = list(pool.map(run_one, *zip(*[(spec, p, rate, cfg, learned, steady)
                                                    for p in at], strict=True)))
            point = {"rate": rate, "load_of_baseline_capacity": TARGET_LOAD, "runs": at_runs,
                     **_point_ratios(at_runs)}
    return {
        "kind": "sim", "simulated": True, "workload": spec.name, "engines": cfg.engines,
        "profile": cfg.profile, "seed": spec.seed, "programs": spec.programs,
        # what produced it: the resolved spec (a name alone hid a copy with 10x the output
        # tokens: bench review 2026-12-08 F7) and the code's commit
        "spec": dataclasses.asdict(spec), "spec_sha256": hashlib.sha256(json.dumps(
            dataclasses.asdict(spec), sort_keys=True).encode()).hexdigest(),
        "code_commit": code_commit(),
        "budget_per_engine": cfg.budget, "slo_factor": cfg.slo_factor,
        "steady_state": {"window_s": list(steady.window), "horizon_s": steady.horizon,
                         "settle_s": steady.window[0], "unloaded_p99_s":
                         unloaded["program_latency_s"]["p99"]},
        "warmup": {"programs": cfg.warmup_programs, "seed": spec.seed + WARMUP_SEED_OFFSET,
                   "rate": min(cfg.rates) / WARMUP_RATE_DIVISOR},
        "unloaded": {"policy": BASELINE, "rate": unloaded_rate, "programs": unloaded["programs"],
                     "engine_utilization": unloaded["engine_utilization"],
                     "loaded": unloaded["engine_utilization"] > UNLOADED_MAX_UTILIZATION,
                     "normalized_latency_s_per_token_mean": reference,
                     "program_latency_s_mean": unloaded["program_latency_s"]["mean"],
                     "program_latency_s_p99": unloaded["program_latency_s"]["p99"],
                     "per_class_normalized_latency_s_per_token_mean": {
                         c: v["normalized_latency_s_per_token"]["mean"]
                         for c, v in unloaded["per_class"].items()}},
        "reference_prefix_hit_rate": single["prefix_hit_rate"],
        "budget_per_policy": {p: cfg.budget_for(p) for p in cfg.policies},
        "bare_policies": [p for p in cfg.policies if cfg.is_bare(p)],
        "classes_ending_programs": [c.name for c in spec.classes if c.ends_programs],
        "unloaded_bare": cfg.is_bare(BASELINE),
        "runs": runs, "capacity": caps, "capacity_bounded": bounded,
        "capacity_per_class": _class_capacities(runs, cfg.policies, class_limits),
        "sustained_throughput": {p: sustained_throughput(
            [(r["rate"], r["stable"]) for r in runs if r["policy"] == p]) for p in cfg.policies},
        "at_80pct_of_baseline_capacity": point,
        "sweep_wall_s": round(time.monotonic() - start, 3),
    }


def _capacities(runs: list[dict[str, Any]], policies: tuple[str, ...],
                limit: float) -> tuple[dict[str, float], dict[str, bool]]:
    caps, bounded = {}, {}
    for policy in policies:
        pts = [(r["rate"], r["normalized_latency_s_per_token"]["mean"], r["stable"])
               for r in runs if r["policy"] == policy]
        cap, bounded[policy] = capacity(pts, limit)
        caps[policy] = round(cap, 6)
    return caps, bounded


def _class_capacities(runs: list[dict[str, Any]], policies: tuple[str, ...],
                      limits: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per policy and class: capacity judged on the class's own mean normalized latency
    (against 5x its own unloaded figure) and its own programs all completing, so that a
    policy that starves one class cannot hide it behind the others."""
    out: dict[str, dict[str, float]] = {}
    for policy in policies:
        mine = [r for r in runs if r["policy"] == policy]
        out[policy] = {}
        for klass, limit in limits.items():
            pts = []
            for r in mine:
                c = r["per_class"].get(klass)
                if c is not None:
                    pts.append((r["rate"], c["normalized_latency_s_per_token"]["mean"],
                                r["stable"] and c["completed"] == c["measured"]))
            out[policy][klass] = round(capacity(pts, limit)[0], 6)
    return out


def _point_ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """p99 over the baseline's and mean over the clairvoyant's, per policy run at the point:
    None where either run was unstable or left programs unfinished (its latencies are the
    finished programs' only: bench review 2026-12-08 F3 found an unstable run's p99 0.33x)."""
    whole = {r["policy"]: r["stable"] and r["completed"] == r["programs"] for r in runs}
    by = {r["policy"]: r["program_latency_s"] for r in runs}

    def ratios(ref: str, q: str) -> dict[str, float | None]:
        at = by.get(ref)
        if not at or at[q] <= 0:
            return {}
        return {p: round(lat[q] / at[q], 4) if whole[p] and whole[ref] else None
                for p, lat in by.items()}
    return {"p99_vs_baseline": ratios(BASELINE, "p99"),
            "mean_vs_clairvoyant": ratios("clairvoyant", "mean")}


def write_results(results: dict[str, Any], out: Path) -> list[Path]:
    from bench.report import markdown, plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    return [out / "results.json", out / "results.md", *plots(results, out)]


def parse_rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SpecError(f"--rates: expected comma-separated numbers, got {text!r}") from None


def parse_budget(text: str) -> tuple[int, tuple[tuple[str, int], ...]]:
    """`256` or `256,default=64,clairvoyant=64`: the budget, then per-policy overrides;
    `none` (or 0): no cap."""
    budget, overrides = None, []
    for item in (x.strip() for x in str(text).split(",") if x.strip()):
        name, sep, value = item.rpartition("=")
        try:
            n = NO_CAP if value.strip() == "none" else int(value)
        except ValueError:
            raise SpecError(f"--budget: expected N or POLICY=N, got {item!r}") from None
        if sep:
            overrides.append((name.strip(), n))
        elif budget is None:
            budget = n
        else:
            raise SpecError(f"--budget: two default budgets ({budget} and {n})")
    return (32 if budget is None else budget), tuple(overrides)


def parse_policies(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def sweep_command(workload: str, policies: str, rates: str, *, engines: int, profile: str,
                  programs: int | None, seed: int | None, out: str, slo_factor: float,
                  budget: int | str, jobs: int, warmup_programs: int = 300, readme: str | None = None,
                  window_s: float = 300.0, bare: str | None = None,
                  ends_programs: bool | None = None,
                  progress: Any = sys.stderr) -> dict[str, Any]:
    from bench.spec import load_spec

    spec = load_spec(workload).with_overrides(seed=seed, programs=programs,
                                              ends_programs=ends_programs)
    default_budget, policy_budgets = parse_budget(str(budget))
    cfg = SweepConfig(parse_policies(policies), parse_rates(rates), engines, profile,
                      default_budget, slo_factor, jobs, warmup_programs, policy_budgets, window_s,
                      BARE_DEFAULT if bare is None else frozenset(parse_policies(bare)))
    results = run_sweep(spec, cfg, progress=progress)
    files = write_results(results, Path(out))
    if readme:
        from bench.report import update_readme

        update_readme(Path(readme), results, Path(out))
    results["_files"] = [str(f) for f in files]
    return results


def capacity_ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Each policy's capacity over fcfs+round_robin's (None when that is 0 or not swept)."""
    base = results["capacity"].get(BASELINE, 0.0)
    return {p: round(c / base, 3) if base else None for p, c in results["capacity"].items()}


def policies_in(results: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(r["policy"] for r in results["runs"]))
