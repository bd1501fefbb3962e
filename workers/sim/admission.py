"""Which waiting requests the sim engine core admits to prefill. SIMULATED.

Modelled on SGLang's schedule_policy.py (SchedulePolicy, PrefillAdder): the waiting queue's
order (`fcfs`: as kept; `lpm`: longest cached prefix first within a priority), the KV an
admitted request takes (its uncached prompt, plus a share of its output while others run),
and priority preemption (retracting running requests of much lower priority). A mixin of
SimEngineCore (workers/sim/scheduler.py), whose state it reads and changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.sim.radix import RadixCache
from workers.sim.requests import EngineParams, Req, ReqState

# SGLang's SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION: reservations count at most this many outputs
CLIP_MAX_NEW_TOKENS = 4096
NEW_TOKEN_RATIO = 0.3  # share of max_new_tokens reserved at admission (SGLang decays 0.7 -> 0.1)


class PrefillAdmission:
    params: EngineParams
    cache: RadixCache
    waiting: list[Req]  # in scheduling order (priority, then entry to the queue)
    prefilling: list[Req]
    running: list[Req]

    if TYPE_CHECKING:
        @property
        def num_running(self) -> int: ...

        def _retract(self, req: Req, now: float) -> None: ...

    def _admit_waiting(self, start: float) -> None:
        """Moves the requests that can start from `waiting` to `prefilling`. SGLang stops at
        the first request that does not fit (head of line). Requests retracted during this
        pass wait for the next one."""
        retracted: set[Req] = set()
        if self.params.schedule_policy == "lpm" and len(self.waiting) <= 128:
            for req in self._sorted_waiting(start):
                if req in retracted:
                    continue
                if not self._try_admit(req, start, retracted):
                    break
                self.waiting.remove(req)
                self.prefilling.append(req)
        else:
            waiting, i = self.waiting, 0  # already in order
            while i < len(waiting):
                req = waiting[i]
                if req in retracted:  # (behind every request it made room for)
                    i += 1
                    continue
                if not self._try_admit(req, start, retracted):
                    break
                del waiting[i]
                self.prefilling.append(req)

    def _sorted_waiting(self, now: float) -> list[Req]:
        """The waiting queue in lpm order: longest cached prefix first within a priority."""
        prio = self.params.enable_priority
        match = {r.rid: self.cache.match_prefix(r.full_key(), now)[0] for r in self.waiting}
        return sorted(self.waiting, key=lambda r: (-r.priority if prio else 0, -match[r.rid],
                                                  r.queued_at))

    def _admit(self, req: Req, now: float) -> bool:
        key = req.full_key()
        matched, node = self.cache.match_prefix(key, now, lock=True)
        matched = min(matched, len(key) - 1)  # the last token is always recomputed for logits
        new = len(key) - matched
        # Room for some of the output too, unless the engine is idle (then any fit will do).
        reserve_out = int(NEW_TOKEN_RATIO * min(req.decoder.reserve_bound(), CLIP_MAX_NEW_TOKENS))
        if not self.cache.can_alloc(new + (reserve_out if self.num_running else 0)):
            self.cache.unlock(node)
            return False
        self.cache.alloc(new)
        req.reserved, req.node, req.key = new, node, key
        req.done_tokens = matched
        if not req.admitted_once:
            req.cached_tokens = max(0, matched - 1)  # the salt token is not a prompt token
            req.admitted_once = True
        req.state = ReqState.PREFILL
        return True

    def _preempt_for(self, req: Req, now: float) -> Req | None:
        """Retracts one running request of much lower priority; returns it, if one was found."""
        if not self.params.enable_priority:
            return None
        victims = [r for r in self.running + self.prefilling
                   if req.priority - r.priority > self.params.preemption_threshold]
        if not victims:
            return None
        victim = min(victims, key=lambda r: (r.priority, -r.queued_at))
        self._retract(victim, now)
        return victim

    def _try_admit(self, req: Req, start: float, retracted: set[Req]) -> bool:
        """Admits req (retracting lower-priority requests if need be); False if it does not fit."""
        while True:
            if self.num_running < self.params.max_running_requests and self._admit(req, start):
                return True
            victim = self._preempt_for(req, start)
            if victim is None:
                return False
            retracted.add(victim)
