"""Issue 4's acceptance through engines: the real planner core driving SIMULATED SGLang
engines in the virtual-time cluster simulator (bench/cluster.py). Each claim has a control.
"""

from __future__ import annotations

import dataclasses
import statistics

from bench.cluster import ClusterConfig, ClusterSim
from bench.programs import ProgramPlan, generate
from bench.results import summarize
from bench.spec import parse_spec
from workers.sim.cost_model import load_profile

PROFILE = load_profile("h100-llama3.1-8b")


def agent_spec(tenants: list[dict], rate: float, programs: int, seed: int = 11) -> dict:
    return {"version": 1, "seed": seed, "programs": programs,
            "arrival": {"process": "poisson", "rate": rate}, "tenants": tenants,
            "classes": [{
                "name": "react", "shape": "chain",
                "calls": {"dist": "lognormal", "mean": 6, "sigma": 0.6, "min": 1, "max": 20},
                "shared_prefix": {"id": "tools", "tokens": 1000},
                "first_prompt_tokens": {"dist": "lognormal", "mean": 735, "sigma": 0.5},
                "step_prompt_tokens": {"dist": "exponential", "mean": 120},
                "output_tokens": {"dist": "lognormal", "mean": 60, "sigma": 0.6, "min": 1, "max": 1000},
                "think_time_s": {"dist": "exponential", "mean": 0.3}}]}


def mean_latency(plans: list[ProgramPlan], policy: str, engines: int, budget: int,
                 tenant: str) -> float:
    run = ClusterSim(plans, policy, PROFILE, ClusterConfig(engines=engines, budget=budget)).run()
    return statistics.mean(o.finished - o.plan.arrival for o in run.outcomes
                           if o.plan.tenant == tenant)


def test_a_flooding_tenant_does_not_starve_another_under_default() -> None:
    rate_b, n_b = 0.5, 40
    alone = generate(parse_spec(agent_spec([{"name": "B"}], rate_b, n_b)))
    flood = generate(parse_spec(agent_spec([{"name": "A", "share": 10}, {"name": "B", "share": 1}],
                                           rate_b * 11, n_b * 11)))
    b_alone = mean_latency(alone, "default", engines=1, budget=16, tenant="B")
    b_flooded = mean_latency(flood, "default", engines=1, budget=16, tenant="B")
    a_flooded = mean_latency(flood, "default", engines=1, budget=16, tenant="A")
    assert a_flooded > 4 * b_alone  # control: A's flood does overload the engine
    assert b_flooded <= 1.5 * b_alone, (b_alone, b_flooded)
    # control: the same traffic with tenants erased (no fair share) leaves B far behind
    blind = [dataclasses.replace(p, tenant="all") for p in flood]
    run = ClusterSim(blind, "default", PROFILE, ClusterConfig(engines=1, budget=16)).run()
    b_blind = statistics.mean(o.finished - o.plan.arrival
                              for o, p in zip(run.outcomes, flood, strict=True) if p.tenant == "B")
    assert b_blind > 3 * b_alone


def test_cache_aware_and_affinity_routing_reuse_more_prefix_than_round_robin() -> None:
    spec = parse_spec(agent_spec([{"name": "acme", "share": 1}, {"name": "globex", "share": 1}],
                                 rate=4.0, programs=120, seed=5))
    plans = generate(spec)
    hit = {}
    for policy in ("fcfs+round_robin", "fcfs+cache_aware", "fcfs+affinity", "default"):
        run = ClusterSim(plans, policy, PROFILE, ClusterConfig(engines=4, budget=32)).run()
        hit[policy] = summarize(run, policy, 4.0)["prefix_hit_rate"]
    assert hit["fcfs+round_robin"] > 0.3  # control: the shared tool prefix hits on every engine
    for policy in ("fcfs+cache_aware", "fcfs+affinity", "default"):
        assert hit[policy] > hit["fcfs+round_robin"] + 0.05, hit
