"""Whose call the planner's queue (planner/core/queue.py) takes next: fair-share order.

Of the tenants with calls in the lanes a pop looks at, the one with the least virtual time
(planner/core/fair_share.py: attained service / weight) goes first, ties by name, so a
flooding tenant cannot starve another. `first_tenant` finds that tenant without sorting
them all (the decision path's); `peek_tenants` lists them all in that order.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from planner.core.lanes import GLOBAL, NO_LANE
from planner.core.queue_state import QueueState


class TenantOrder(QueueState):
    """The queue's tenants in fair-share order (module doc)."""

    def peek_tenants(self, lanes: Sequence[str] = (GLOBAL,)) -> list[str]:
        """Tenants with calls in `lanes`, fair-share order."""
        all_lanes = self._lanes
        active: list[str] = []
        for lane in lanes:
            tenants = all_lanes.get(lane)
            if tenants:
                for t, q in tenants.items():
                    if q.size and t not in active:
                        active.append(t)
        if len(active) > 1:
            active.sort()  # ties: by name
            active.sort(key=self._vtime_of)  # every active tenant has a virtual time
        return active

    def first_tenant(self, lanes: Sequence[str] = (GLOBAL,),
                     among: Container[str] | None = None) -> str | None:
        """The first of `peek_tenants(lanes)` that is `among` them (None: any), or None,
        without sorting them all: the decision path's."""
        all_lanes, vtime = self._lanes, self._vtime
        best: str | None = None
        best_v = 0.0
        if among is not None and isinstance(among, (set, frozenset)):  # the admitted ones
            for t in among:  # (often fewer than the tenants): those with calls in `lanes`
                for lane in lanes:
                    q = all_lanes.get(lane, NO_LANE).get(t)
                    if q is not None and q.size:
                        break
                else:
                    continue
                v = vtime[t]
                if best is None or v < best_v or (v == best_v and t < best):
                    best, best_v = t, v
            return best
        for lane in lanes:
            tenants = all_lanes.get(lane)
            if tenants:
                for t, q in tenants.items():
                    if q.size and (among is None or t in among):
                        v = vtime[t]
                        if best is None or v < best_v or (v == best_v and t < best):
                            best, best_v = t, v
        return best
