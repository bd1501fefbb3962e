"""Tenants' loads: each tenant's calls running and waiting, averaged over about LOAD_TAU_S,
by which tenant isolation judges a worker whose budget is above the isolation budget
(planner/core/tenants.py `TenantShares._judged`: uncapped, its free slots never run out).

Counts of the moment do not tell a flood from a burst: a fan-out's 125 calls waiting for an
instant made its tenant heavy, and the calls then held kept it so (SIMULATED, `mixed` at 12
programs/s: 3.7% slower), while holds lower a flooding tenant's running calls, so judging by
them let the flood through every other moment (`flood`: 1.62x the quiet tenant's latency
alone against 1.27x; docs/bench/isolation). Averaged, the flood's load stays high while it
is held and a burst is a burst. Against its share of the isolation budget on every worker
together, a tenant is light under LIGHT_BELOW of it and heavy from HEAVY_FROM: tenants of
one size (two equal tenants of `mixed`) are rarely far enough apart to hold each other.

Per dispatch the cost is O(active tenants), and nothing where no worker is judged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

from planner.core.model import WorkerState

LIGHT_BELOW = 0.75
HEAVY_FROM = 1.25
LOAD_TAU_S = 10.0


class TenantLoads:
    def __init__(self, budget: int) -> None:
        """`budget`: the isolation budget; a worker whose budget is above it is judged."""
        self.budget = budget
        self.workers = 1  # healthy workers (`judge`): the whole cluster's share of budget
        self.judging = False  # some healthy worker's budget is above `budget`
        self._load: dict[str, float] = {}  # tenant -> calls running and waiting, averaged
        self._at = 0.0  # when `observe` last folded them in

    def judge(self, healthy: Collection[WorkerState]) -> None:
        """The healthy workers (when they change): how many, and whether any has a budget
        above the isolation budget (else no load is kept: `observe` costs nothing)."""
        self.workers = len(healthy)
        self.judging = self.budget > 0 and any(w.max_inflight > self.budget for w in healthy)
        if not self.judging:
            self._load.clear()

    def observe(self, now: float, tenants: Collection[str], demand: Callable[[str], int],
                keep: Callable[[str], bool]) -> None:
        """Folds each of `tenants`' calls running and waiting (`demand`) into its load (once
        per dispatch); a tenant neither there nor `keep` is forgotten."""
        if not self.judging:
            return
        weight = 1.0 - math.exp(-max(0.0, now - self._at) / LOAD_TAU_S)
        self._at = now
        if weight <= 0.0:
            return
        load = self._load
        for u in tenants:
            was = load.get(u, 0.0)
            load[u] = was + (demand(u) - was) * weight
        for u in [u for u in load if u not in tenants and not keep(u)]:
            del load[u]

    def classify(self, fraction: Mapping[str, float]) -> tuple[list[str], list[str]]:
        """The light and the heavy tenants among `fraction`'s (tenant -> its share)."""
        whole = self.budget * max(1, self.workers)
        load = self._load
        light: list[str] = []
        heavy: list[str] = []
        for u, f in fraction.items():
            mine = load.get(u, 0.0)
            if mine < whole * f * LIGHT_BELOW:
                light.append(u)
            elif mine >= whole * f * HEAVY_FROM:
                heavy.append(u)
        return light, heavy
