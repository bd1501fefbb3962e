"""Weighted fair share across the planner's tenants: their weights and virtual times.

Each tenant has a virtual time (attained service / weight); the global queue takes the next
call from the active tenant with the least virtual time (planner/core/tenant_order.py), so
a flooding tenant cannot starve another. A tenant that becomes active starts at the least
active virtual time, so idle periods are not banked as credit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cache.tenancy import check_weight


class FairShare:
    """The tenants' fair-share weights (a tenant not named: 1) and virtual times."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self._weights = _checked(weights or {})
        # tenant -> virtual time; mutated, never replaced (the queue reads it on the decision
        # path through a reference bound once)
        self.vtime: dict[str, float] = {}
        # the latest virtual time a charge reached (the finish of the calls served, as
        # self-clocked fair queueing's system virtual time): where a tenant that becomes
        # active starts when no other has calls queued
        self._last_finish = 0.0

    def set_weights(self, weights: Mapping[str, float]) -> bool:
        """Replaces the tenants' fair-share weights (a tenant not named: 1); whether any
        tenant's weight changed. ValueError, nothing changed, for a weight out of
        cache/tenancy.check_weight's range (nan, inf, 0 and below included)."""
        new = _checked(weights)
        changed = any(new.get(t, 1.0) != self._weights.get(t, 1.0) for t in new.keys()
                      | self._weights.keys())
        self._weights = new
        return changed

    def weight(self, tenant: str) -> float:
        return self._weights.get(tenant, 1.0)  # each one checked as it came

    def activate(self, tenant: str, active: Iterable[str]) -> None:
        """The tenant becomes active (the queue had no calls of it counted): it starts at the
        least virtual time of the `active` tenants, or where none has calls queued at the
        latest virtual time a charge reached, so that idle periods are not banked as
        credit (a review found a tenant arriving while the others were between calls started
        at 0 and ran its whole backlog ahead of a tenant 100 s on)."""
        vtime = self.vtime
        times = [vtime.get(t, 0.0) for t in active]
        floor = min(times) if times else self._last_finish
        vtime[tenant] = max(vtime.get(tenant, 0.0), floor)

    def account(self, tenant: str, service_s: float) -> None:
        """Charges completed service to a tenant's virtual time."""
        vtime = self.vtime[tenant] = self.vtime.get(tenant, 0.0) + service_s / self.weight(tenant)
        # never back (charges come as calls end, not in virtual-time order: a review found a
        # light tenant's call ending after a heavy one's set the floor back to 1 from 100)
        self._last_finish = max(self._last_finish, vtime)


def _checked(weights: Mapping[str, float]) -> dict[str, float]:
    """The weights, each in cache/tenancy.check_weight's range (else ValueError): none
    makes a share fraction 0 or a virtual time inf or nan."""
    for tenant, weight in weights.items():
        try:
            check_weight(weight)
        except ValueError as exc:
            raise ValueError(f"tenant {tenant!r}: {exc}") from None
    return dict(weights)
