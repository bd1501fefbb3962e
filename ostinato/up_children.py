"""What `ostinato up` does as the services it started exit: which of them it starts again
(a planner replica whose lease was lost), when the mesh cannot go on, and the line it
prints for each exit (docs/operations/faults.md)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import Any

from planner.lease import LEASE_LOST_EXIT

STANDBY_START_S = 30.0  # how long a planner started again after losing its lease may take


def lease_lost(before: Mapping[str, int | None], now: Mapping[str, int | None],
               planners: list[str]) -> list[str]:
    """The planner replicas that have just exited because their lease was lost (Redis did
    not confirm a renewal in time: planner/lease.py): `up` is their supervisor, and starts
    each again as a standby (fault review 2026-12-06: each Redis stall past the lease's TTL
    took a replica for good, and the second stopped the mesh)."""
    return [name for name in planners
            if now.get(name) == LEASE_LOST_EXIT and before.get(name) is None]


def standby_again(mesh: Any, name: str) -> int | None:
    """Starts planner replica `name` again (its port as before); its exit status if it
    cannot be (the mesh then goes on as without it)."""
    try:
        mesh.restart(name, timeout_s=STANDBY_START_S)
    except (RuntimeError, OSError) as exc:
        print(f"ostinato up: {name} lost its lease and could not be started again: {exc}",
              file=sys.stderr, flush=True)
        return LEASE_LOST_EXIT
    print(f"ostinato up: {name} lost its lease (Redis did not confirm it in time): started "
          "again as a standby", file=sys.stderr, flush=True)
    return None


def child_names(planners: Mapping[str, str], workers: Mapping[str, str], engines: int) -> list[str]:
    """The services `up` started, by name: the gateway, the planners, the workers and the
    sim engines (engine-i; none where the workers launch their own)."""
    return ["gateway", *planners, *workers, *(f"engine-{i}" for i in range(engines))]


def exit_lines(before: Mapping[str, int | None], now: Mapping[str, int | None], *,
               stopping: bool) -> list[str]:
    """A line for each service that has exited since `before` (exit statuses, None while
    running), naming it, its status and what the mesh does without it
    (docs/operations/faults.md); `stopping`: the mesh cannot go on (fatal_exit)."""
    return [f"{name} {_status(code)}; "
            + ("stopping the mesh" if stopping else _without(name, serving_workers(now)))
            for name, code in now.items() if code is not None and before.get(name) is None]


def serving_workers(codes: Mapping[str, int | None]) -> list[str]:
    """The workers still running whose sim engine (where `up` started one) is running too."""
    return [name for name, code in codes.items() if name.startswith("worker-") and code is None
            and codes.get("engine-" + name.removeprefix("worker-")) is None]


def fatal_exit(codes: Mapping[str, int | None], planners: list[str]) -> str:
    """"gateway" or "planner" when the mesh cannot go on (the gateway exited, or every
    planner replica), else ""."""
    for name, names in (("gateway", ["gateway"]), ("planner", planners)):
        if names and all(codes.get(n) is not None for n in names):
            return name
    return ""


def _status(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"exited (killed by {signal.Signals(-code).name})"
    except ValueError:
        return f"exited (killed by signal {-code})"


def _without(name: str, serving: list[str]) -> str:
    """What the mesh does without `name`, `serving` (serving_workers) still there."""
    then = ("calls go to the other workers" if serving else "no worker is left to serve "
            "calls: they queue until they time out (gateway.call_timeout_s); restart the mesh")
    if name.startswith("worker-"):
        return ("the mesh goes on without it: the planner drops it (planner.worker_ttl_s) and "
                + then)
    if name.startswith("engine-"):
        return (f"the mesh goes on without it: worker-{name.removeprefix('engine-')} fails its "
                "health probe and " + then)
    return "the mesh goes on with the other planner replicas"  # (fatal_exit: not the last)
