"""Whether a process's Redis answers, node by node, as its callers last found it.

Every gateway feature that keeps something in Redis (answer caches, quotas, the conversation
index, stored responses and conversations) goes on without it when Redis fails: a cache
answers "miss", a call is served unmetered, a response is not stored. Each used to find that
out for itself, one timeout per operation, so a stalled Redis (a paused process, a dead
network path) made every call wait out two or three timeouts. One RedisOutage per client
is shared by them: after an operation fails because its node is out of reach, the next
ones bound for that node skip Redis at once for `retry_s` (their callers go on as after a
failure). Then one operation, the first to come, probes the node while the others keep
skipping it: its success ends the outage, its failure starts another `retry_s`. A probe
whose caller never says how it went (cancelled, or failed with something that says
nothing of Redis) holds the others back no longer than its own timeout; then the next
operation probes. An outage is logged once, when it starts, and once when it ends.

The view is per node. A single server is one node (`WHOLE`). On a Redis Cluster an
operation's key names its node (key -> slot -> the slot's master in the client's slot map,
read at each operation, so a slot that moved to another node, a replica promoted in a
failover, is sent there and not skipped): one node out of reach does not hold back the
keys of the others. An operation with no one key (a pipeline across slots), or whose slot
the client cannot place, is counted under `WHOLE`, a view of its own.

Pure and clock-injected: no I/O, no asyncio; `within` (cache/redis_client.py) calls it
around each operation.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

RETRY_S = 1.0  # how long a node is skipped after a failure before it is probed again
PROBE_S = 5.0  # how long a probe with no timeout of its own holds the others back at most

Node = Hashable  # a Cluster node's name ("host:port"), or WHOLE
WHOLE: Node = None  # a single server, or an operation bound for no one Cluster node


class Skipped(Exception):
    """Why an operation was not sent: its node failed under `retry_s` ago, or is being
    probed (the cause of the caller's unavailable error, so it is not counted as a Redis
    error of its own)."""


@dataclass(frozen=True)
class Attempt:
    """An operation let through: its node, when it started, and whether it is the probe
    of an outage (its number; 0: not a probe)."""

    node: Node
    started: float
    probe: int = 0


@dataclass
class _View:
    """One node's state."""

    down: bool = False  # its last operation failed (until one succeeds)
    retry_at: float = 0.0  # while down: skipped until then
    changed_at: float = float("-inf")  # when its outage last began or ended
    probe: int = 0  # the probe in flight (0: none)
    probe_until: float = 0.0  # when that probe stops holding the others back


class RedisOutage:
    def __init__(self, retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic,
                 probe_s: float = PROBE_S, route: Callable[[Any], Node] | None = None) -> None:
        """`route`: an operation's key -> its node (None: every key is `WHOLE`'s)."""
        self._retry_s = retry_s
        self._clock = clock
        self._probe_s = probe_s
        self._route = route
        self._views: dict[Node, _View] = {}
        self._probes = 0  # probes begun (their numbers)
        self.skipped = 0  # operations not sent (counted, for the metrics)

    def node_of(self, key: Any = None) -> Node:
        """The node an operation on `key` is bound for (no key: `WHOLE`)."""
        if key is None or self._route is None:
            return WHOLE
        return self._route(key)

    @property
    def down(self) -> bool:
        """Whether some node's last operation failed."""
        return any(view.down for view in self._views.values())

    def down_nodes(self) -> list[Node]:
        return [node for node, view in self._views.items() if view.down]

    def now(self) -> float:
        """When an operation starts (what `failed` and `succeeded` are told)."""
        return self._clock()

    def attempt(self, node: Node = WHOLE, timeout_s: float | None = None) -> Attempt | None:
        """An operation bound for `node` (that takes at most `timeout_s`) may be sent (its
        Attempt), or not (None, counted): the node failed under `retry_s` ago, or another
        operation is probing it. The first one after `retry_s` is the probe: the others
        skip until it is told of (`failed`, `succeeded`, `release`) or its `timeout_s`
        (else `probe_s`) has passed."""
        now = self._clock()
        view = self._views.get(node)
        if view is None or not view.down:
            return Attempt(node, now)
        if now < view.retry_at or (view.probe and now < view.probe_until):
            self.skipped += 1
            return None
        self._probes += 1
        view.probe = self._probes
        view.probe_until = now + (self._probe_s if timeout_s is None else timeout_s)
        return Attempt(node, now, view.probe)

    def skip(self, node: Node = WHOLE) -> bool:
        """Whether an operation bound for `node` should not be sent (counted when so); one
        that should is the node's probe when it is down."""
        return self.attempt(node) is None

    def failed(self, started: float | None = None, node: Node = WHOLE) -> bool:
        """An operation bound for `node` that started at `started` failed: the node is
        skipped for `retry_s` (and a probe in flight is done). One that started before the
        node's outage began or ended is stale (it says nothing of the node now) and
        changes nothing. True when this begins an outage (what to log)."""
        now = self._clock()
        view = self._views.setdefault(node, _View())
        if started is not None and started < view.changed_at:
            return False
        began = not view.down
        if began:
            view.changed_at = now
            view.down = True
        view.retry_at = now + self._retry_s
        view.probe = 0
        return began

    def succeeded(self, started: float | None = None, node: Node = WHOLE) -> bool:
        """An operation bound for `node` that started at `started` succeeded (or the server
        answered it with an error of its own). One that started before the outage began is
        stale (sent before the node failed) and does not end it. True when this ends an
        outage."""
        view = self._views.get(node)
        if view is None or not view.down:
            return False
        if started is not None and started < view.changed_at:
            return False
        view.down = False
        view.changed_at = self._clock()
        view.probe = 0
        return True

    def release(self, attempt: Attempt) -> None:
        """`attempt` is over, whatever became of it: a probe not told of (its caller was
        cancelled, or it failed with an error that says nothing of Redis) no longer holds
        the others back, and the next operation probes. Nothing for one told of."""
        view = self._views.get(attempt.node)
        if attempt.probe and view is not None and view.probe == attempt.probe:
            view.probe = 0


def cluster_route(client: Any) -> Callable[[Any], Node] | None:
    """A Redis Cluster client's `route`: a key's node in the client's slot map as it is at
    each call (`get_node_from_key`: key -> slot -> the slot's master); `WHOLE` where the
    map places no node (not read yet, slot not covered). None for a single server's
    client. Holds the client weakly (the view is kept per client, cache/outage.py)."""
    if not callable(getattr(client, "get_node_from_key", None)):
        return None
    ref = weakref.ref(client)

    def route(key: Any) -> Node:
        live = ref()
        if live is None:
            return WHOLE
        try:
            node = live.get_node_from_key(key)
        except Exception:  # a slot the map does not place (SlotNotCoveredError), a bad key
            return WHOLE
        return WHOLE if node is None else node.name

    return route


_OUTAGES: WeakKeyDictionary[object, RedisOutage] = WeakKeyDictionary()


def outage_of(client: object) -> RedisOutage:
    """The outage view shared by every user of `client` (one client, one view, per node
    where it is a cluster client)."""
    outage = _OUTAGES.get(client)
    if outage is None:
        outage = _OUTAGES[client] = RedisOutage(route=cluster_route(client))
    return outage
