"""Which planner replica is active: the lease state machine (pure, clock-injected).

Several planners may run; one is active, holding a lease in Redis (planner/ha.py does the
Redis side). A standby tries to acquire it every `renew_s`; the active one renews it every
`renew_s`. Each acquisition comes with a token, larger than every earlier one, that the
store's writes carry (planner/fencing.py), so a planner that lost the lease without knowing
it (paused, cut off) cannot overwrite its successor's state.

The active planner serves only while its lease is surely valid: until `ttl_s - margin_s`
after it *sent* its last successful acquire or renew. Redis started the TTL later than that
(when the command arrived), so the holder stops before the key can expire in Redis and a
standby can take it; `margin_s` covers clocks that run at slightly different rates. A
renewal refused (someone else holds the lease, or it expired) or one that cannot be
confirmed in time (Redis out of reach) ends the term for good: the process then exits and
its supervisor starts it again as a standby (a deposed planner's memory is stale).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

# The exit status of a planner whose lease was lost: its supervisor (`ostinato up`,
# Kubernetes) starts it again, as a standby
LEASE_LOST_EXIT = 3


class Role(enum.Enum):
    STANDBY = "standby"  # waiting for the lease
    ACTIVE = "active"  # holding it: serving
    LOST = "lost"  # held it, and no longer surely does: never serves again


class Step(enum.Enum):
    ACQUIRE = "acquire"  # try to take the lease (standby)
    RENEW = "renew"  # extend it (active)
    WAIT = "wait"  # nothing due before `at`
    STOP = "stop"  # the term is over (lost)


@dataclass(frozen=True)
class LeaseTiming:
    ttl_s: float  # the lease's lifetime in Redis
    renew_s: float  # the active renews, and a standby tries to acquire, this often
    margin_s: float  # the active stops serving this long before its lease could expire

    def __post_init__(self) -> None:
        if self.ttl_s <= 0 or self.renew_s <= 0 or self.margin_s < 0:
            raise ValueError("lease: ttl_s and renew_s must be > 0, margin_s >= 0")
        if self.renew_s + self.margin_s >= self.ttl_s:
            raise ValueError(f"lease: renew_s ({self.renew_s}) + margin ({self.margin_s}) must be "
                             f"under ttl_s ({self.ttl_s}): the lease would lapse between renewals")

    @classmethod
    def of(cls, ttl_s: float, renew_s: float) -> LeaseTiming:
        """A tenth of the TTL as margin (clock-rate differences are parts per million)."""
        return cls(ttl_s, renew_s, ttl_s / 10)

    @property
    def ttl_ms(self) -> int:
        return max(1, math.ceil(self.ttl_s * 1000))


@dataclass(frozen=True)
class Due:
    step: Step
    at: float  # when (for WAIT: when to look again)


class Lease:
    """One planner's view of the lease. Feed it what Redis answered, with the time the
    request was sent; ask `due(now)` what to do next and `holds(now)` whether to serve."""

    def __init__(self, timing: LeaseTiming, now: float) -> None:
        self.timing = timing
        self.role = Role.STANDBY
        self.token: int | None = None  # the fencing token of this term
        self.reason = ""  # why the term ended
        self._valid_until = -math.inf
        self._next = now

    def holds(self, now: float) -> bool:
        """Whether this planner may serve now."""
        return self.role is Role.ACTIVE and now < self._valid_until

    @property
    def valid_until(self) -> float:
        return self._valid_until

    def due(self, now: float) -> Due:
        if self.role is Role.ACTIVE and now >= self._valid_until:
            self._lose("lease not renewed in time")
        if self.role is Role.LOST:
            return Due(Step.STOP, now)
        if now < self._next:
            limit = self._valid_until if self.role is Role.ACTIVE else math.inf
            return Due(Step.WAIT, min(self._next, limit))
        return Due(Step.ACQUIRE if self.role is Role.STANDBY else Step.RENEW, now)

    def acquired(self, sent_at: float, token: int) -> None:
        """Redis gave us the lease, and `token`."""
        if self.role is not Role.STANDBY:
            raise RuntimeError(f"acquired while {self.role.value}")
        self.role, self.token = Role.ACTIVE, token
        self._extend(sent_at)

    def refused(self, sent_at: float) -> None:
        """Redis said no: another planner holds the lease (standby: try again later), or our
        lease is gone (active: the term is over)."""
        if self.role is Role.ACTIVE:
            self._lose("lease renewal refused: another planner holds it, or it expired")
        elif self.role is Role.STANDBY:
            self._next = sent_at + self.timing.renew_s

    def renewed(self, sent_at: float) -> None:
        if self.role is not Role.ACTIVE:
            return  # a late answer after the term ended changes nothing
        if sent_at >= self._valid_until:
            self._lose("lease renewed too late")
            return
        self._extend(sent_at)

    def failed(self, now: float) -> None:
        """Redis did not answer. The active one keeps serving while its lease is surely valid
        and tries again soon; a standby tries again in `renew_s`."""
        if self.role is Role.STANDBY:
            self._next = now + self.timing.renew_s
        elif self.role is Role.ACTIVE:
            self._next = now + min(self.timing.renew_s, self.timing.ttl_s / 20)

    def depose(self, reason: str) -> None:
        """Told from outside that the term is over (a fenced write was refused; stopping)."""
        if self.role is not Role.LOST:
            self._lose(reason)

    def _extend(self, sent_at: float) -> None:
        self._valid_until = sent_at + self.timing.ttl_s - self.timing.margin_s
        self._next = sent_at + self.timing.renew_s

    def _lose(self, reason: str) -> None:
        self.role, self.reason = Role.LOST, reason
        self._valid_until = -math.inf
