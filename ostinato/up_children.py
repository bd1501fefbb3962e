"""What `ostinato up` does as the services it started exit: which of them it starts again
(a planner replica whose lease was lost), when the mesh cannot go on, and the line it
prints for each exit (docs/operations/faults.md)."""

from __future__ import annotations

import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ostinato.lost_terminal import say
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


class Standbys:
    """Planner replicas `up` starts again after they lost their lease (`lease_lost`), not
    waiting for them: its poll loop goes on watching the other services while one starts
    (before, it stood in the restart up to STANDBY_START_S). `clock`: monotonic seconds."""

    def __init__(self, mesh: Any, clock: Callable[[], float],
                 timeout_s: float = STANDBY_START_S) -> None:
        self._mesh, self._clock, self._timeout_s = mesh, clock, timeout_s
        self.starting: dict[str, float] = {}  # name -> when it must serve by

    def start(self, name: str) -> int | None:
        """Starts replica `name` again (its port as before); its exit status if it cannot
        be (the mesh then goes on as without it)."""
        try:
            self._mesh.respawn(name)
        except (RuntimeError, OSError) as exc:
            return _not_again(name, str(exc))
        self.starting[name] = self._clock() + self._timeout_s
        return None

    def check(self, codes: dict[str, int | None]) -> None:
        """Each replica starting: serving (said so), exited (its status stays in `codes`:
        the mesh goes on as without it), or past its time (killed: its status the next
        poll's)."""
        for name, deadline in list(self.starting.items()):
            if codes.get(name) is not None:
                _not_again(name, f"exited with status {codes[name]} while starting")
            elif self._mesh.ready(name):
                say(f"ostinato up: {name} lost its lease (Redis did not confirm it in "
                    "time): started again as a standby", file=sys.stderr, flush=True)
            elif self._clock() > deadline:
                self._mesh.child(name).kill()
                _not_again(name, f"not serving within {self._timeout_s:.0f} s (killed)")
            else:
                continue
            del self.starting[name]


def _not_again(name: str, why: str) -> int:
    say(f"ostinato up: {name} lost its lease and could not be started again: {why}",
        file=sys.stderr, flush=True)
    return LEASE_LOST_EXIT


class RedisKeeper:
    """`up`'s embedded Redis, started again on its port from its append-only file each time
    it dies, the services serving on without it meanwhile and reconnecting (a walkthrough
    2026-12-07 found it left a zombie, quotas unmetered until someone started a Redis by
    hand); one that dies again after `limit` restarts within `window_s` (OOM-killed, say)
    is left down, as is one not serving within `start_s` (its file still loading). `up`'s
    poll loop does not wait for it to serve: each `check` looks once. `clock`: monotonic
    seconds."""

    def __init__(self, mesh: Any, clock: Callable[[], float], limit: int = 5,
                 window_s: float = 60.0, start_s: float = 60.0) -> None:
        self._mesh, self._clock, self._limit, self._window_s = mesh, clock, limit, window_s
        self._start_s = start_s
        self._starts: deque[float] = deque()  # when it was started again, within the window
        self._serve_by: float | None = None  # while it starts again: when it must serve by
        self.died = False  # (the mesh's logs are kept then)

    def check(self) -> Iterator[str]:
        """The lines to print, each as it comes (none while it serves, or starts)."""
        if self._serve_by is not None and self._mesh.redis_exit() is None:
            yield from self._starting()
            return
        self._serve_by = None  # (one that exits while it starts again: a death, counted)
        code = self._mesh.redis_exit()
        if code is None:
            return
        self.died, now = True, self._clock()
        while self._starts and now - self._starts[0] > self._window_s:
            self._starts.popleft()
        if len(self._starts) >= self._limit:
            self._mesh.stop_redis()  # reaped, its data directory's lock released: left down
            yield (f"redis {_status(code)} again after {self._limit} restarts in "
                   f"{self._window_s:.0f} s: not started again; the mesh goes on without it "
                   "(no caches or quotas; restart the mesh)")
            return
        yield (f"redis {_status(code)}; the services serve on without it (no caches or quotas, "
               "program records held back) while it starts again")
        self._starts.append(now)
        try:
            self._mesh.start_redis(wait=False)
        except (RuntimeError, OSError) as exc:
            yield (f"redis could not be started again: {exc}; the mesh goes on without it "
                   "(restart the mesh)")
            return
        self._serve_by = now + self._start_s

    def _starting(self) -> Iterator[str]:
        assert self._serve_by is not None
        if self._mesh.redis_serving():
            self._serve_by = None
            yield "redis started again on its port, from its append-only file"
        elif self._clock() > self._serve_by:
            self._serve_by = None
            self._mesh.stop_redis()
            yield (f"redis not serving within {self._start_s:.0f} s of starting again (its "
                   "append-only file still loading?): stopped; the mesh goes on without it "
                   "(no caches or quotas; restart the mesh)")


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
