"""Weighted fair share across the planner's tenants: their weights and virtual times.

Each tenant has a virtual time (attained service / weight); the global queue
(planner/core/queue.py) takes the next call from the active tenant with the least virtual
time, so a flooding tenant cannot starve another. A tenant that becomes active starts at the
least active virtual time, so idle periods are not banked as credit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class FairShare:
    """The tenants' fair-share weights (a tenant not named: 1) and virtual times."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self._weights = dict(weights or {})
        # tenant -> virtual time; mutated, never replaced (the queue reads it on the decision
        # path through a reference bound once)
        self.vtime: dict[str, float] = {}

    def set_weights(self, weights: Mapping[str, float]) -> bool:
        """Replaces the tenants' fair-share weights (a tenant not named: 1); whether any
        tenant's weight changed."""
        if any(w <= 0 for w in weights.values()):
            raise ValueError("tenant weights must be positive")
        new = dict(weights)
        changed = any(new.get(t, 1.0) != self._weights.get(t, 1.0) for t in new.keys()
                      | self._weights.keys())
        self._weights = new
        return changed

    def weight(self, tenant: str) -> float:
        w = self._weights.get(tenant, 1.0)
        if w <= 0:
            raise ValueError(f"tenant weight must be positive: {tenant}")
        return w

    def activate(self, tenant: str, active: Iterable[str]) -> None:
        """The tenant becomes active (the queue had no calls of it counted): it starts at the
        least virtual time of the `active` tenants, so that idle periods are not banked as
        credit."""
        vtime = self.vtime
        times = [vtime.get(t, 0.0) for t in active]
        floor = min(times) if times else 0.0
        vtime[tenant] = max(vtime.get(tenant, 0.0), floor)

    def account(self, tenant: str, service_s: float) -> None:
        """Charges completed service to a tenant's virtual time."""
        self.vtime[tenant] = self.vtime.get(tenant, 0.0) + service_s / self.weight(tenant)
