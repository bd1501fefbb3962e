"""How a request leaves the sim engine's batch (a mixin of SimEngineCore,
workers/sim/scheduler.py): its KV moved into the radix tree or freed, its lock released;
retracted back to the queue, or finished with its event. SIMULATED, as SGLang 0.5's
cache_unfinished_req / cache_finished_req and release_req.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from workers.sim.followers import Followers
from workers.sim.radix import RadixCache
from workers.sim.requests import EngineEvent, Req, ReqState
from workers.sim.text import FixedLengthDecoder


def retraction_order(req: Req) -> tuple[int, int]:
    """The first to go has the fewest output tokens, then the longest prompt."""
    return req.decoder.completion_tokens, -len(req.prompt_ids)


class RequestRelease:
    cache: RadixCache
    waiting: list[Req]
    prefilling: list[Req]
    running: list[Req]
    _reqs: dict[str, Req]
    _followers: Followers
    _order: Callable[[Req], tuple[int, float]]  # the waiting queue's sort key

    def _cache_progress(self, req: Req, now: float) -> None:
        """Moves the request's KV into the tree (SGLang cache_unfinished_req / cache_finished_req)."""
        self.cache.free(req.reserved)
        req.reserved = 0
        # req.node's path is a prefix of the key: the walk starts there
        _, node = self.cache.insert(req.full_key(), now, req.hash_seed(), start=req.node,
                                    known=req.block_hashes, lock=True,
                                    shared_blocks=req.shared_blocks, salt=req.salt)
        if req.node is not None:
            self.cache.unlock(req.node)
        req.node = node

    def _release(self, req: Req, now: float, insert: bool) -> None:
        self._followers.drop(req)
        if req.state is ReqState.RUNNING and insert:  # a partial prefill is not cached
            self._cache_progress(req, now)
        if req.reserved:
            self.cache.free(req.reserved)
            req.reserved = 0
        if req.node is not None:
            self.cache.unlock(req.node)
            req.node = None
        if req.state is ReqState.RUNNING:
            self.running.remove(req)
        elif req.state is ReqState.PREFILL:
            self.prefilling.remove(req)

    def _retract(self, req: Req, now: float) -> None:
        """Back to the end of the waiting queue (within its priority: SGLang re-queues a
        retracted request with a new entry time); its prompt stays cached (evictable: put in
        the tree when its prefill ended), its output's KV is freed and recomputed when it is
        admitted again (SGLang's release_req: release_kv_cache without inserting)."""
        self._release(req, now, insert=False)
        req.state = ReqState.WAITING
        req.retractions += 1
        req.queued_at = now
        bisect.insort(self.waiting, req, key=self._order)

    def _finish(self, req: Req, now: float, reason: dict[str, object] | None, delta: str = "",
                produced: int = 0) -> EngineEvent:
        req.state = ReqState.FINISHED
        self._reqs.pop(req.rid, None)
        d = req.decoder
        return EngineEvent(
            req.rid, now, delta=delta, new_tokens=produced, finish_reason=reason,
            prompt_tokens=len(req.prompt_ids), completion_tokens=d.completion_tokens,
            cached_tokens=req.cached_tokens, e2e_latency=now - req.arrival,
            first_token_at=req.first_token_at, text=d.text,
            output_ids=d.output_key() if type(d) is FixedLengthDecoder else tuple(d.output_ids),
        )
