"""The planner core under random interleavings (tests/planner/core_machine.py), one state
machine a policy and set of options: bounded and deterministic (a fixed number of examples,
derandomized, no example database), a few seconds each."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from tests.planner.core_machine import CoreMachine

SETTINGS = settings(max_examples=150, stateful_step_count=50, derandomize=True, database=None,
                    deadline=None, suppress_health_check=list(HealthCheck))


def _case(policy: str, **options: Any) -> type:
    machine = type(f"Machine_{policy}", (CoreMachine,), {"policy": policy, "options": options})
    case = machine.TestCase
    case.settings = SETTINGS
    return case


TestFcfsRoundRobin = _case("fcfs+round_robin")
TestPlasLeastLoad = _case("plas+least_load", program_admission=True)
TestAtlasAffinity = _case("atlas+affinity", max_queued=6, max_queued_per_tenant=4)
TestSrptAffinity = _case("srpt+affinity", kv_tokens_per_worker=4000)
TestSlackCacheAware = _case("slack+cache_aware")
