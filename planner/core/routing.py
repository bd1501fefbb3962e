"""Routing policies: which worker gets a dispatched call. A policy is a small plugin.

`choose` gets the call, its program, the workers with free admission budget (sorted by
id) and every worker (for load comparisons), and returns one of the candidates, changing
nothing; `started` then tells it where the call starts (its choice, or an early start's
worker as good: `route`), for a policy that keeps what it sent where. `home`
names the worker a call is worth waiting for when that is full (the planner parks it
there, planner/core/parking.py), or "" for a policy that never waits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from cache.block_hash import held_prefix_blocks
from planner.core.model import CallRecord, Program, WorkerState


class RoutingPolicy(Protocol):
    name: str

    def choose(self, call: CallRecord, program: Program, candidates: Sequence[WorkerState],
               workers: Sequence[WorkerState]) -> WorkerState: ...

    def home(self, call: CallRecord, program: Program) -> str:
        """The worker this call should wait for when it is full ("": none, go anywhere)."""
        ...

    def started(self, call: CallRecord, worker: WorkerState) -> None:
        """The call starts on `worker`."""
        ...

    def holds(self, call: CallRecord, worker_id: str) -> int:
        """Leading blocks of the call's prompt the policy takes the worker to hold."""
        ...

    def forget(self, worker_id: str) -> None:
        """The worker left, or registered anew (its engine may hold nothing): drop what the
        policy keeps of it."""
        ...


def held_blocks(call: CallRecord, worker_id: str) -> int | None:
    """Leading prompt blocks the worker's engine holds, per the KV-reference index (None:
    the index was not consulted, did not answer, or does not know this worker: the planner's
    copy of a worker's index not loaded yet, cache/kv_mirror.py)."""
    if call.kv_matches is None:
        return None
    return call.kv_matches.get(worker_id)


def route(call: CallRecord, program: Program, routing: RoutingPolicy,
          candidates: Sequence[WorkerState], workers: Sequence[WorkerState]) -> WorkerState:
    """Where the call starts, of `candidates`: the policy's choice, or the worker its
    gateway started it on early where that is as good (`early_or`); the policy is told
    (review 2026-12-07: cache_aware indexed its prompt on the worker it chose instead)."""
    worker = early_or(call, program, routing, candidates,
                      routing.choose(call, program, candidates, workers))
    routing.started(call, worker)
    return worker


def early_or(call: CallRecord, program: Program, routing: RoutingPolicy,
             candidates: Sequence[WorkerState], chosen: WorkerState) -> WorkerState:
    """Where a call its gateway started early on a worker (`call.started_on`) starts: there,
    when that worker is a candidate as good as `chosen` (the routing policy's choice): no
    more loaded and holding no less of its prompt, `chosen` being neither the call's home
    nor its program's last worker (where their context is). Else `chosen`."""
    early = call.started_on  # (as a policy takes what each holds: cache_aware its own index)
    if not early or chosen.worker_id in (early, routing.home(call, program), program.last_worker):
        return chosen
    for w in candidates:
        if w.worker_id == early:
            if w.inflight * chosen.max_inflight <= chosen.inflight * w.max_inflight and \
                    routing.holds(call, early) >= routing.holds(call, chosen.worker_id):
                return w
            break
    return chosen


def least_loaded(candidates: Sequence[WorkerState]) -> WorkerState:
    if not candidates:
        raise ValueError("choose() needs at least one candidate")
    return min(candidates, key=lambda w: (w.inflight / max(1, w.max_inflight), w.worker_id))


class _KeepsNothing:
    """A policy that keeps nothing of where calls went and takes what a worker holds from
    the KV-reference index (call.kv_matches)."""

    def started(self, call: CallRecord, worker: WorkerState) -> None:
        pass

    def holds(self, call: CallRecord, worker_id: str) -> int:
        return held_blocks(call, worker_id) or 0


class _NoHome(_KeepsNothing):
    def home(self, call: CallRecord, program: Program) -> str:
        return ""

    def forget(self, worker_id: str) -> None:
        pass  # nothing kept per worker


class RoundRobin(_NoHome):
    """Rotates over workers, as a Kubernetes Service in front of vLLM does."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last = ""

    def choose(self, call: CallRecord, program: Program, candidates: Sequence[WorkerState],
               workers: Sequence[WorkerState]) -> WorkerState:
        if not candidates:
            raise ValueError("choose() needs at least one candidate")
        for worker in candidates:  # candidates are sorted by worker_id
            if worker.worker_id > self._last:
                return worker
        return candidates[0]

    def started(self, call: CallRecord, worker: WorkerState) -> None:
        self._last = worker.worker_id


class LeastLoad(_NoHome):
    """The worker with the fewest calls in flight relative to its budget (ties: lowest id)."""

    name = "least_load"

    def choose(self, call: CallRecord, program: Program, candidates: Sequence[WorkerState],
               workers: Sequence[WorkerState]) -> WorkerState:
        return least_loaded(candidates)


class Affinity(_KeepsNothing):
    """A program's calls stay on the engine holding its context.

    A call with parents goes to its home (`home`: the worker of its latest parent, whose
    prompt its own extends) whenever that has a free slot; when the home is full the
    planner parks the call there for a bounded time (planner/core/parking.py) rather than
    re-prefill its context elsewhere. Leaving early for balance cost more than it gained:
    on `mixed` at 16 programs/s, 8 engines, staying raised the prefix hit rate from 0.836
    to 0.865 (one unbounded engine: 0.866) and cut p99 program latency from 61.5 s to
    57.8 s (SIMULATED, docs/bench/).
    A call without parents (a program's first call, a map stage's siblings) holds no
    context of its own: it follows the program's last worker unless that is loaded both
    more than `max_extra` calls above the least loaded and more than `balance_rel` times
    its load, else to the least loaded of the engines the KV-reference index says hold at
    least `cache_threshold` of its prompt (e.g. a shared system prompt) if that is within
    `max_extra` calls of the least loaded, else to the least loaded. Without that last bound
    a tenant's shared tool schemas pulled every new ReAct agent onto one engine: on `mixed`
    at 28/s it prefilled 1.4x the mean and starved its decodes (SIMULATED)."""

    name = "affinity"

    def __init__(self, max_extra: int = 4, cache_threshold: float = 0.3,
                 balance_rel: float = 1.5) -> None:
        self._max_extra = max_extra
        self._threshold = cache_threshold
        self._rel = balance_rel

    def forget(self, worker_id: str) -> None:
        pass  # nothing kept per worker: homes are read from the programs' records

    def home(self, call: CallRecord, program: Program) -> str:
        """The worker that ran the call's latest parent; empty for calls without parents.
        Where the KV-reference index says that worker holds none of the call's prompt and
        another holds some (its engine restarted, flushed or evicted the context), the one
        holding the most: else the call waited for, or went to, an engine holding nothing
        of it while another held its prompt (routing review 2026-12-06: 623 cached tokens
        lost after a flush; the new program beside it went to the engine holding them)."""
        home, latest = "", -1.0
        calls = program.calls
        for p in call.parents:
            parent = calls.get(p)
            if parent is not None and (parent.finished_at or 0.0) > latest:
                home, latest = parent.worker_id, parent.finished_at or 0.0
        matches = call.kv_matches  # (a worker it leaves out: the index knows nothing of it)
        if home and matches and matches.get(home, -1) == 0:
            best = max(sorted(matches), key=matches.__getitem__)  # (ties: by worker id)
            if matches[best] > 0:
                return best
        return home

    def choose(self, call: CallRecord, program: Program, candidates: Sequence[WorkerState],
               workers: Sequence[WorkerState]) -> WorkerState:
        if len(candidates) == 1:  # the only choice, wherever its home is
            return candidates[0]
        home = self.home(call, program)
        for w in candidates:
            if w.worker_id == home:
                return w
        least = least_loaded(candidates)
        preferred = program.last_worker
        if preferred:
            for w in candidates:
                if w.worker_id == preferred and (w.inflight <= least.inflight + self._max_extra
                                                 or w.inflight <= self._rel * least.inflight):
                    return w
            return least
        if call.kv_matches and call.prefix_hashes:
            # Of the engines holding enough of the prompt, the least loaded, and only while
            # it is within max_extra calls of the least loaded overall: a prefix every
            # program shares (a tenant's tool schemas) would otherwise pull every new
            # program onto the one engine that cached it first.
            need = self._threshold * len(call.prefix_hashes)
            holders = [w for w in candidates if call.kv_matches.get(w.worker_id, 0) >= need]
            if holders:
                best = least_loaded(holders)
                if best.inflight <= least.inflight + self._max_extra:
                    return best
        return least


class CacheAware(_NoHome):
    """SGLang router's cache-aware policy, on the KV-reference index in Redis when the
    planner service consulted it (call.kv_matches), else on its own approximate index.

    The approximate index remembers the prompt block hashes routed to each worker (LRU-bounded), as
    SGLang's router keeps an approximate radix tree of what it sent. When loads are
    imbalanced (max - min > balance_abs and max > balance_rel * min), route to the least
    loaded; otherwise to the longest matched prefix if it covers at least
    `cache_threshold` of the prompt, else to the least loaded. The thresholds' defaults are
    the router's own (SGLang Model Gateway: cache_threshold 0.3, balance_abs_threshold 64,
    balance_rel_threshold 1.5).
    """

    name = "cache_aware"

    def __init__(self, balance_abs: int = 64, balance_rel: float = 1.5,
                 cache_threshold: float = 0.3, max_blocks_per_worker: int = 500_000) -> None:
        self._abs, self._rel = balance_abs, balance_rel
        self._threshold = cache_threshold
        self._cap = max_blocks_per_worker
        self._index: dict[str, OrderedDict[int, None]] = {}

    def matched_blocks(self, worker_id: str, hashes: Sequence[int]) -> int:
        """Longest prefix of `hashes` indexed for the worker (binary search: chained hashes)."""
        idx = self._index.get(worker_id)
        return held_prefix_blocks(idx, hashes) if idx else 0

    def _record(self, worker_id: str, hashes: Sequence[int]) -> None:
        idx = self._index.setdefault(worker_id, OrderedDict())
        for h in reversed(hashes):  # leading blocks most recent: the LRU drops a tail first
            idx[h] = None
            idx.move_to_end(h)
        while len(idx) > self._cap:
            idx.popitem(last=False)

    def forget(self, worker_id: str) -> None:
        self._index.pop(worker_id, None)

    def choose(self, call: CallRecord, program: Program, candidates: Sequence[WorkerState],
               workers: Sequence[WorkerState]) -> WorkerState:
        if len(candidates) == 1:  # the only choice (a busy cluster's usual case): no loads
            return candidates[0]
        least = least_loaded(candidates)
        # the healthy workers' (an unhealthy one's few calls made a balanced cluster look
        # imbalanced, and calls left the worker holding their prefix: a review)
        loads = [w.inflight for w in workers if w.healthy] or [0]
        imbalanced = max(loads) - min(loads) > self._abs and max(loads) > self._rel * min(loads)
        pick = least
        if call.prefix_hashes and not imbalanced:
            best = max(candidates, key=lambda w: (self.holds(call, w.worker_id), -w.inflight,
                                                  w.worker_id))
            if self.holds(call, best.worker_id) >= self._threshold * len(call.prefix_hashes):
                pick = best
        return pick

    def started(self, call: CallRecord, worker: WorkerState) -> None:
        self._record(worker.worker_id, call.prefix_hashes)

    def holds(self, call: CallRecord, worker_id: str) -> int:
        """The KV-reference index's figure where the planner consulted it, else its own."""
        known = held_blocks(call, worker_id)
        return self.matched_blocks(worker_id, call.prefix_hashes) if known is None else known


def routing_policies() -> dict[str, type]:
    return {"round_robin": RoundRobin, "least_load": LeastLoad, "affinity": Affinity,
            "cache_aware": CacheAware}
