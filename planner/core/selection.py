"""Choosing policies by name: `<priority>+<routing>` or a preset, as config and bench do."""

from __future__ import annotations

from planner.core.policies import PriorityPolicy, priority_policies
from planner.core.routing import RoutingPolicy, routing_policies

# What the mesh ships with: shortest expected remaining program work first, learned per class
# (PLAS until a class has history), and affinity, which keeps a program's context on one
# engine. ATLAS, our earlier default, under-charges wide programs (a tree search of 156 calls
# looks as short as its 4-call critical path); see docs/bench/ for the comparison.
# `clairvoyant` is told every program's true size: a comparison, not a bound (the name
# workload-spec.md gives it, `oracle`, is not taken: `default` has beaten it).
PRESETS = {"default": "srpt+affinity", "clairvoyant": "clairvoyant+affinity"}
SIMULATION_ONLY = {"clairvoyant"}  # priority policies that need the future (bench only)
# Names of workload-spec.md's not taken here: asked for, the error says what to ask instead.
RENAMED = {"oracle": ("clairvoyant", "told every program's true size it is no upper bound: "
                                     "`default` has beaten it (docs/bench/method.md)")}


def parse_policy(spec: str, *, live: bool = False) -> tuple[PriorityPolicy, RoutingPolicy]:
    """`<priority>+<routing>`, e.g. `fcfs+round_robin`, or a preset name. `live`: for the
    mesh's planner, whose error names no policy that exists only in the simulator."""
    priorities, routings = priority_policies(), routing_policies()
    presets = PRESETS
    if spec in RENAMED and not live:
        name, why = RENAMED[spec]
        raise ValueError(f"policy {spec!r} is called {name!r} here ({why}); ask for {name!r}")
    spec = presets.get(spec, spec)
    prio, sep, route = spec.partition("+")
    if not sep or prio not in priorities or route not in routings:
        named = sorted(p for p in priorities if not (live and p in SIMULATION_ONLY))
        preset_names = sorted(p for p, v in presets.items()
                              if not (live and v.partition("+")[0] in SIMULATION_ONLY))
        raise ValueError(
            f"unknown policy {spec!r}: expected <priority>+<routing> with priority in "
            f"{named} and routing in {sorted(routings)}, or one of {preset_names}"
        )
    return priorities[prio](), routings[route]()
