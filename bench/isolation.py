"""`ostinato bench isolation`: does a tenant within its fair share keep its latency while
another floods? SIMULATED (the cluster simulator, steady-state runs).

The workload (default `flood`) names two tenants, the quiet one first, with their shares of
the programs. Per policy, two steady-state runs on the same engines:
- alone: the quiet tenant's programs at `quiet_rate`;
- flood: the same quiet programs (the same stream: same sizes and arrival times) merged with
  the noisy tenant's own stream at quiet_rate x its share / the quiet share (9x for `flood`).
The figure is the quiet tenant's mean program latency under the flood over alone (1.0:
perfect isolation). The flood is meant to overload the engines, so the flood run as a whole
is not stable; the quiet tenant's own programs must be: every measured one finished and
the window kept up with them (bench/results.py `stable_window`). When they are not, the
ratio is None (unbounded): a mean over the quiet programs that happened to finish would
flatter the policy.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from collections.abc import Iterator
from typing import Any

from bench.cluster import ClusterConfig, ClusterSim
from bench.programs import ProgramPlan, stream
from bench.results import stable_window, summarize
from bench.sim_run import SimRun
from bench.spec import SpecError, WorkloadSpec
from bench.sweep import ROUTER_BUDGET, SweepConfig, cluster_for, run_one, steady_state
from workers.sim.cost_model import load_profile

NOISY_SEED_OFFSET = 7919  # the noisy tenant's stream: another seed than the quiet one's


def _only(spec: WorkloadSpec, tenant: int, rate: float, seed: int) -> WorkloadSpec:
    one = dataclasses.replace(spec.tenants[tenant], share=1.0)
    return dataclasses.replace(spec, tenants=(one,), seed=seed).with_overrides(rate=rate)


def _merged(quiet: WorkloadSpec, noisy: WorkloadSpec) -> Iterator[ProgramPlan]:
    """Both tenants' streams in arrival order, numbered afresh."""
    both = heapq.merge(stream(quiet), stream(noisy), key=lambda p: p.arrival)
    for i, plan in enumerate(both):
        yield dataclasses.replace(plan, index=i, program_id=f"p{i:06d}")


def _quiet_stable(run: SimRun, tenant: str) -> bool:
    assert run.steady is not None
    start, end = run.steady.window
    mine = [o for o in run.outcomes if o.plan.tenant == tenant]
    measured = [o for o in mine if o.measured]
    finished_in_window = sum(1 for o in mine if start <= o.finished < end)
    return (all(o.finished >= 0 for o in measured)
            and stable_window(len(measured), finished_in_window))


def isolation(spec: WorkloadSpec, policies: tuple[str, ...], quiet_rate: float, *,
              engines: int = 1, budget: int = 32, window_s: float = 300.0,
              profile: str = "h100-llama3.1-8b",
              isolation_fraction: float | None = None, isolation_budget: int | None = None,
              bare: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`isolation_fraction`: the planner's (planner/core/tenants.py; None: its default) in
    the flood run; the quiet tenant alone is one tenant, which it never limits. `bare`:
    policies run as bare routers (bench/sweep.py `cluster_for`: no planner budget, program
    admission or tenant shares), as SGLang's router would serve the two tenants; by default
    every policy has the planner's tenant machinery, which is what this scenario measures."""
    if len(spec.tenants) != 2 or min(t.share for t in spec.tenants) <= 0:
        raise SpecError("isolation: the workload must name two tenants with shares above 0, "
                        "the quiet one first")
    if quiet_rate <= 0:
        raise SpecError("--quiet-rate must be > 0")
    quiet_name, noisy_name = (t.name for t in spec.tenants)
    noisy_rate = quiet_rate * spec.tenants[1].share / spec.tenants[0].share
    alone_spec = _only(spec, 0, quiet_rate, spec.seed)
    noisy_spec = _only(spec, 1, noisy_rate, spec.seed + NOISY_SEED_OFFSET)
    cfg = SweepConfig(policies, (quiet_rate,), engines=engines, profile=profile, budget=budget,
                      warmup_programs=0, window_s=window_s, bare=bare)
    cfg.validate()
    # the latency reference: the quiet tenant alone, unloaded, through the planner
    unloaded = run_one(alone_spec.with_overrides(programs=min(spec.programs, 200)),
                       "fcfs+round_robin", quiet_rate / 20,
                       dataclasses.replace(cfg, bare=frozenset()))
    steady = steady_state(unloaded["program_latency_s"]["p99"], window_s)
    planner = ClusterConfig(engines=engines, budget=budget or ROUTER_BUDGET,  # 0: none
                            tenant_weights={t.name: t.weight for t in spec.tenants})
    if isolation_fraction is not None:
        planner = dataclasses.replace(planner, isolation_fraction=isolation_fraction)
    if isolation_budget is not None:
        planner = dataclasses.replace(planner, isolation_budget=isolation_budget)
    runs = []
    for policy in policies:
        alone = run_one(alone_spec, policy, quiet_rate, cfg, steady=steady)
        name, cluster = cluster_for(policy, cfg, spec) if cfg.is_bare(policy) else (policy, planner)
        sim = ClusterSim(_merged(alone_spec, noisy_spec), name, load_profile(profile),
                         cluster, steady=steady)
        run = sim.run()
        flood = summarize(run, policy, quiet_rate + noisy_rate)
        mine = flood["per_tenant"].get(quiet_name, {"measured": 0, "completed": 0,
                                                    "program_latency_s": {"mean": 0.0,
                                                                          "p99": 0.0}})
        quiet_ok = _quiet_stable(run, quiet_name)
        alone_mean = alone["program_latency_s"]["mean"]
        runs.append({
            "policy": policy, "budget_per_engine": cfg.budget_for(policy),
            "bare": cfg.is_bare(policy),
            "alone": {"rate": quiet_rate, "stable": alone["stable"],
                      "measured": alone["measured_programs"],
                      "program_latency_s": alone["program_latency_s"],
                      "engine_utilization": alone["engine_utilization"]},
            "flood": {"rate": quiet_rate + noisy_rate, "noisy_rate": noisy_rate,
                      "stable": flood["stable"], "quiet_stable": quiet_ok,
                      "quiet_measured": mine["measured"], "quiet_completed": mine["completed"],
                      "quiet_program_latency_s": mine["program_latency_s"],
                      "per_tenant": flood["per_tenant"],
                      "noisy_completed_per_s": round(sum(
                          1 for o in run.outcomes if o.plan.tenant == noisy_name
                          and steady.window[0] <= o.finished < steady.window[1])
                          / (steady.window[1] - steady.window[0]), 4),
                      "engine_utilization": flood["engine_utilization"]},
            "quiet_latency_vs_alone": round(mine["program_latency_s"]["mean"] / alone_mean, 4)
            if quiet_ok and alone_mean > 0 else None,
        })
    return {"kind": "sim", "simulated": True, "scenario": "isolation", "workload": spec.name,
            "engines": engines, "profile": profile, "quiet_tenant": quiet_name,
            "isolation_fraction": planner.isolation_fraction,
            "isolation_budget": planner.isolation_budget,
            "program_kv_fraction": planner.program_kv_fraction,
            "quiet_rate": quiet_rate, "noisy_rate": noisy_rate,
            "steady_state": {"window_s": list(steady.window), "horizon_s": steady.horizon},
            "runs": runs}


def isolation_command(args: Any) -> dict[str, Any]:
    from pathlib import Path

    from bench.spec import load_spec
    from bench.sweep import parse_budget, parse_policies

    budget, overrides = parse_budget(args.budget)
    if overrides:
        raise SpecError("isolation: --budget is one budget for every policy (N or none)")
    results = isolation(load_spec(args.workload), parse_policies(args.policies), args.quiet_rate,
                        engines=args.engines, budget=budget, window_s=args.window_s,
                        profile=args.profile, isolation_fraction=args.isolation_fraction,
                        isolation_budget=args.isolation_budget,
                        bare=frozenset(parse_policies(args.bare)) if args.bare else frozenset())
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results
