"""`ostinato bench isolation` on a tiny two-tenant workload. SIMULATED."""

from __future__ import annotations

import pytest

from bench.isolation import isolation
from bench.spec import SpecError, parse_spec


def flood_spec(tenants: list[dict]) -> dict:
    return {"version": 1, "seed": 4, "programs": 50, "tenants": tenants,
            "classes": [{"name": "c", "shape": "chain", "calls": 2, "first_prompt_tokens": 300,
                         "step_prompt_tokens": 30, "output_tokens": 40, "think_time_s": 0.1}]}


def test_quiet_tenant_alone_and_under_a_flood() -> None:
    spec = parse_spec(flood_spec([{"name": "quiet", "share": 0.1},
                                  {"name": "noisy", "share": 0.9}]))
    out = isolation(spec, ("fcfs+round_robin", "default"), 0.5, window_s=20.0, budget=4)
    assert out["quiet_tenant"] == "quiet" and out["noisy_rate"] == pytest.approx(4.5)
    assert [r["policy"] for r in out["runs"]] == ["fcfs+round_robin", "default"]
    for run in out["runs"]:
        alone, flood = run["alone"], run["flood"]
        assert flood["rate"] == pytest.approx(5.0) and alone["stable"]
        # the same quiet programs in both runs: the flood is added, nothing is redrawn
        assert flood["quiet_measured"] == alone["measured"] > 0
        assert set(flood["per_tenant"]) == {"quiet", "noisy"}
        if flood["quiet_stable"]:
            assert flood["quiet_completed"] == flood["quiet_measured"]
            ratio = flood["quiet_program_latency_s"]["mean"] / alone["program_latency_s"]["mean"]
            assert run["quiet_latency_vs_alone"] == pytest.approx(ratio, abs=1e-4)
        else:
            assert run["quiet_latency_vs_alone"] is None


@pytest.mark.parametrize("tenants", [[{"name": "only"}],
                                     [{"name": "q", "share": 0}, {"name": "n", "share": 1}]])
def test_the_workload_must_name_a_quiet_and_a_noisy_tenant(tenants: list[dict]) -> None:
    with pytest.raises(SpecError, match="isolation"):
        isolation(parse_spec(flood_spec(tenants)), ("default",), 0.5, window_s=10.0)


def test_no_policy_runs_bare_in_the_isolation_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alone and under the flood, every policy runs with the planner's tenant machinery (the
    flood run's cluster config has it): a baseline run bare alone would compare unlike runs."""
    from bench import isolation as iso

    seen: list[frozenset[str]] = []
    real = iso.run_one

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(args[3].bare)
        return real(*args, **kwargs)

    monkeypatch.setattr(iso, "run_one", spy)
    spec = parse_spec(flood_spec([{"name": "quiet", "share": 0.1},
                                  {"name": "noisy", "share": 0.9}]))
    isolation(spec, ("fcfs+cache_aware",), 0.5, window_s=20.0, budget=4)
    assert seen and all(bare == frozenset() for bare in seen)


def test_budget_none_grants_every_call_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--budget none` (0): the flood run's planner grants without a cap (it gave the planner
    a budget of 0, which runs nothing); the CLI takes one budget for every policy."""
    from bench import isolation as iso
    from bench.sweep import ROUTER_BUDGET

    budgets: list[int] = []
    real = iso.ClusterSim

    def spy(programs, policy, profile, cluster, **kwargs):  # type: ignore[no-untyped-def]
        budgets.append(cluster.budget)
        return real(programs, policy, profile, cluster, **kwargs)

    monkeypatch.setattr(iso, "ClusterSim", spy)
    spec = parse_spec(flood_spec([{"name": "quiet", "share": 0.1},
                                  {"name": "noisy", "share": 0.9}]))
    out = iso.isolation(spec, ("default",), 0.5, window_s=20.0, budget=0)
    assert budgets == [ROUTER_BUDGET] and out["runs"][0]["flood"]["quiet_completed"] > 0
    with pytest.raises(SpecError, match="one budget"):
        iso.isolation_command(type("Args", (), {"budget": "4,default=8"})())
