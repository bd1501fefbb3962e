"""Whether a process's Redis answers, as its callers last found it.

Every gateway feature that keeps something in Redis (answer caches, quotas, the conversation
index, stored responses and conversations) goes on without it when Redis fails: a cache
answers "miss", a call is served unmetered, a response is not stored. Each used to find that
out for itself, one timeout per operation, so a stalled Redis (a paused process, a dead
network path) made every call wait out two or three timeouts. One RedisOutage per client
is shared by them: after an operation fails, the next ones skip Redis at once for `retry_s`
(their callers go on as after a failure), then the next operation probes it again. An
outage is logged once, when it starts, and once when it ends. Pure, clock-injected; the
stores call it around their own operations (cache/bounded.py, cache/redis_client.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from weakref import WeakKeyDictionary

RETRY_S = 1.0  # how long Redis is skipped after a failure before it is tried again


class Skipped(Exception):
    """Why an operation was not sent: Redis failed under `retry_s` ago (the cause of the
    caller's unavailable error, so it is not counted as a Redis error of its own)."""


class RedisOutage:
    def __init__(self, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._retry_s = retry_s
        self._clock = clock
        self._retry_at = 0.0
        self._changed_at = float("-inf")  # when the outage last began or ended
        self.down = False  # the last operation failed (until one succeeds)
        self.skipped = 0  # operations not sent while down (counted, for the metrics)

    def skip(self) -> bool:
        """Whether the next operation should not be sent (Redis failed under `retry_s` ago);
        counted when so."""
        if self.down and self._clock() < self._retry_at:
            self.skipped += 1
            return True
        return False

    def now(self) -> float:
        """When an operation starts (what `failed` and `succeeded` are told)."""
        return self._clock()

    def failed(self, started: float | None = None) -> bool:
        """An operation that started at `started` failed: Redis is skipped for `retry_s`.
        One that started before the last success is stale (Redis answered since) and
        changes nothing. True when this begins an outage (what to log)."""
        if started is not None and not self.down and started < self._changed_at:
            return False
        began = not self.down
        if began:
            self._changed_at = self._clock()
        self.down = True
        self._retry_at = self._clock() + self._retry_s
        return began

    def succeeded(self, started: float | None = None) -> bool:
        """An operation that started at `started` succeeded. One that started before the
        outage began is stale (sent before Redis failed) and does not end it. True when
        this ends an outage."""
        if started is not None and self.down and started < self._changed_at:
            return False
        ended = self.down
        if ended:
            self._changed_at = self._clock()
        self.down = False
        return ended


_OUTAGES: WeakKeyDictionary[object, RedisOutage] = WeakKeyDictionary()


def outage_of(client: object) -> RedisOutage:
    """The outage view shared by every user of `client` (one Redis, one view)."""
    outage = _OUTAGES.get(client)
    if outage is None:
        outage = _OUTAGES[client] = RedisOutage()
    return outage
