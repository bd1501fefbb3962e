"""Lost grants: running calls that no worker will ever report, found from its heartbeat.

The planner holds a call as running on its worker from the grant until the worker's
completion report. Two ways no report ever comes: the gateway holding the grant dies
before it starts the call on the worker (a killed gateway cannot say so), or the worker
restarts and forgets what it ran. Either way the call holds the worker's slot for good.

Each worker's heartbeat lists the calls it knows: running, ended lately, or whose
completion report is still being sent. A call the planner holds as running on that
worker which the list lacks, granted more than `min_age_s` ago, has ended without a
trace (PlannerCore.reconcile_worker ends it CANCELLED; its client, if alive, retries).
A call must be missing from two lists in a row, each past that age: a list built just
before the call reached the worker and delivered late (a busy machine) cannot end it.
The age counts from the grant or from when this planner first heard from the worker,
whichever is later: a restarted planner restores running calls with their old grant
times, and a caller that never got its grant is re-admitted and starts the call just
after the restart, so those get the same grace as a fresh grant.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from planner.core.model import CallRecord

CallAttempt = tuple[str, str, int]  # (program_id, call_id, attempt); attempt 0: any


def lost_calls(running: Iterable[CallRecord], known: Collection[CallAttempt], *, now: float,
               worker_since: float, min_age_s: float) -> list[CallRecord]:
    """Of the calls running on a worker, those it does not know and were granted more than
    `min_age_s` before `now` (each grant counted from `worker_since` at the earliest).
    `min_age_s` 0: none (the check is off)."""
    if min_age_s <= 0:
        return []
    cutoff = now - min_age_s
    if worker_since >= cutoff:
        return []
    lost = []
    for call in running:
        granted = call.arrival if call.dispatched_at is None else call.dispatched_at
        if granted >= cutoff:
            continue
        ids = (call.program_id, call.call_id)
        if (*ids, call.attempt) in known or (*ids, 0) in known:
            continue
        lost.append(call)
    return lost


class UnstartedGrants:
    """When this planner first heard from each worker, and how many lost grants it ended."""

    def __init__(self, min_age_s: float) -> None:
        if min_age_s < 0:
            raise ValueError("unstarted_grant_s must be >= 0")
        self.min_age_s = min_age_s
        self.total = 0
        self._since: dict[str, float] = {}
        self._suspects: dict[str, set[CallAttempt]] = {}  # missing from the worker's last list

    def seen(self, worker_id: str, now: float) -> None:
        """A worker registered (first, or again after it was dropped)."""
        self._since[worker_id] = now

    def forget(self, worker_id: str) -> None:
        self._since.pop(worker_id, None)
        self._suspects.pop(worker_id, None)

    def lost(self, worker_id: str, running: Iterable[CallRecord],
             known: Collection[CallAttempt], now: float) -> list[CallRecord]:
        """The lost grants among `running` (see lost_calls) that the worker's previous list
        lacked as well, counted."""
        since = self._since.get(worker_id, now)
        missing = lost_calls(running, known, now=now, worker_since=since,
                             min_age_s=self.min_age_s)
        before = self._suspects.get(worker_id, set())
        self._suspects[worker_id] = {(c.program_id, c.call_id, c.attempt) for c in missing}
        lost = [c for c in missing if (c.program_id, c.call_id, c.attempt) in before]
        self.total += len(lost)
        return lost
