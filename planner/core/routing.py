"""Routing policies: which worker gets a dispatched call. A policy is a small plugin.

`choose` gets only workers with free admission budget, in a stable order, and
returns one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from planner.core.model import CallRecord, WorkerState


class RoutingPolicy(Protocol):
    name: str

    def choose(self, call: CallRecord, candidates: Sequence[WorkerState]) -> WorkerState: ...


class RoundRobin:
    """Rotates over workers, as a Kubernetes Service in front of vLLM does."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last = ""

    def choose(self, call: CallRecord, candidates: Sequence[WorkerState]) -> WorkerState:
        if not candidates:
            raise ValueError("choose() needs at least one candidate")
        for worker in candidates:  # candidates are sorted by worker_id
            if worker.worker_id > self._last:
                self._last = worker.worker_id
                return worker
        self._last = candidates[0].worker_id
        return candidates[0]


class LeastLoad:
    """The worker with the fewest calls in flight (ties: lowest id)."""

    name = "least_load"

    def choose(self, call: CallRecord, candidates: Sequence[WorkerState]) -> WorkerState:
        if not candidates:
            raise ValueError("choose() needs at least one candidate")
        return min(candidates, key=lambda w: (w.inflight / max(1, w.max_inflight), w.worker_id))


def routing_policies() -> dict[str, type]:
    return {"round_robin": RoundRobin, "least_load": LeastLoad}
