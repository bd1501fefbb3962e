"""`ostinato bench isolation`: does a tenant within its fair share keep its latency while
another floods? SIMULATED (the cluster simulator, steady-state runs).

The workload (default `flood`) names two tenants, the quiet one first, with their shares of
the programs. Per policy, two steady-state runs on the same engines:
- alone: only the quiet tenant's programs, at `quiet_rate`;
- flood: both tenants at quiet_rate / quiet share (e.g. a noisy tenant at 9x): the quiet
  tenant's programs are again a Poisson stream at quiet_rate (other draws of the same class).
The figure is the quiet tenant's mean program latency under the flood over alone (1.0:
perfect isolation). The flood is meant to overload the engines, so the flood run is not
stable: only the quiet tenant's measured programs count, and they must all finish.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bench.spec import SpecError, WorkloadSpec
from bench.sweep import SweepConfig, run_one, steady_state


def _tenants(spec: WorkloadSpec) -> tuple[str, float]:
    if len(spec.tenants) != 2:
        raise SpecError("isolation: the workload must name two tenants, the quiet one first")
    quiet = spec.tenants[0]
    share = quiet.share / sum(t.share for t in spec.tenants)
    if not 0 < share < 1:
        raise SpecError("isolation: both tenants need a share above 0")
    return quiet.name, share


def isolation(spec: WorkloadSpec, policies: tuple[str, ...], quiet_rate: float, *,
              engines: int = 1, budget: int = 32, window_s: float = 300.0,
              profile: str = "h100-llama3.1-8b") -> dict[str, Any]:
    quiet, share = _tenants(spec)
    if quiet_rate <= 0:
        raise SpecError("--quiet-rate must be > 0")
    alone_spec = dataclasses.replace(spec, tenants=(dataclasses.replace(spec.tenants[0],
                                                                        share=1.0),))
    flood_rate = quiet_rate / share
    cfg = SweepConfig(policies, (quiet_rate, flood_rate), engines=engines, profile=profile,
                      budget=budget, warmup_programs=0, window_s=window_s)
    cfg.validate()
    unloaded = run_one(alone_spec.with_overrides(programs=min(spec.programs, 200)),
                       "fcfs+round_robin", quiet_rate / 20, cfg)
    steady = steady_state(unloaded["program_latency_s"]["p99"], window_s)
    runs = []
    for policy in policies:
        alone = run_one(alone_spec, policy, quiet_rate, cfg, steady=steady)
        flood = run_one(spec, policy, flood_rate, cfg, steady=steady)
        mine = flood["per_tenant"].get(quiet, {"measured": 0, "completed": 0,
                                               "program_latency_s": {"mean": 0.0, "p99": 0.0}})
        alone_mean = alone["program_latency_s"]["mean"]
        runs.append({
            "policy": policy, "budget_per_engine": budget,
            "alone": {"rate": quiet_rate, "stable": alone["stable"],
                      "program_latency_s": alone["program_latency_s"],
                      "engine_utilization": alone["engine_utilization"]},
            "flood": {"rate": flood_rate, "stable": flood["stable"],
                      "quiet_measured": mine["measured"], "quiet_completed": mine["completed"],
                      "quiet_program_latency_s": mine["program_latency_s"],
                      "per_tenant": flood["per_tenant"],
                      "engine_utilization": flood["engine_utilization"]},
            "quiet_latency_vs_alone": round(mine["program_latency_s"]["mean"] / alone_mean, 4)
            if alone_mean > 0 else None,
        })
    return {"kind": "sim", "simulated": True, "scenario": "isolation", "workload": spec.name,
            "engines": engines, "profile": profile, "quiet_tenant": quiet,
            "quiet_share": round(share, 6), "steady_state": {"window_s": list(steady.window),
                                                             "horizon_s": steady.horizon},
            "runs": runs}


def isolation_command(args: Any) -> dict[str, Any]:
    from pathlib import Path

    from bench.spec import load_spec
    from bench.sweep import parse_policies

    results = isolation(load_spec(args.workload), parse_policies(args.policies), args.quiet_rate,
                        engines=args.engines, budget=args.budget, window_s=args.window_s,
                        profile=args.profile)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results
