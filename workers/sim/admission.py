"""Which waiting requests the sim engine core admits to prefill. SIMULATED.

Modelled on SGLang 0.5's schedule_policy.py (PrefillAdder: `add_chunked_req`,
`add_one_req`, `budget_state`, `preempt_to_schedule`) and scheduler.py
(`_get_new_batch_prefill_raw`, the NewTokenRatioTracker):
- the waiting queue's order (`fcfs`: as kept; `lpm`: longest cached prefix first within a
  priority);
- a prefill pass admits requests while its chunk budget (`chunked_prefill_size`) lasts: the
  request continuing a chunked prefill first, then waiting requests in order, the last one
  maybe cut to a chunk (it goes on at the next pass); head of line: the pass stops at the
  first request that does not fit;
- a request fits when its uncached prompt, its max_new_tokens (at most 4,096) and a page
  fit in the pool's free and evictable tokens less what the pass has promised: each running
  request's remaining max_new_tokens (at most 4,096) times the new-token ratio (1 for
  ignore_eos), and each request admitted in the pass its max_new_tokens. The ratio starts
  at 0.7, falls by (0.7 - 0.098) / 600 at each decode step to 0.098, is set after a
  retraction to what the remaining requests have decoded (+20 steps each) over their
  max_new_tokens, and starts again at 0.7 when the engine is idle;
- priority preemption only when every request slot is taken (`max_running_requests`):
  running requests (not ones mid-prefill) of lower priority by more than the threshold,
  lowest first then newest, as many as free the tokens the new request needs (by their
  promised tokens), else none.
The sim allocates a request's whole uncached prompt when it is admitted (SGLang: each
chunk as it is prefilled): a chunked prompt holds its later chunks' KV a little early.
A mixin of SimEngineCore (workers/sim/scheduler.py), whose state it reads and changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.sim.radix import RadixCache
from workers.sim.requests import EngineParams, Req, ReqState

# SGLang's SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION: reservations count at most this many outputs
CLIP_MAX_NEW_TOKENS = 4096
# SGLang's SGLANG_INIT_NEW_TOKEN_RATIO, its MIN_NEW_TOKEN_RATIO_FACTOR (of the initial
# ratio) and NEW_TOKEN_RATIO_DECAY_STEPS; SGLANG_RETRACT_DECODE_STEPS
INIT_NEW_TOKEN_RATIO = 0.7
MIN_NEW_TOKEN_RATIO = INIT_NEW_TOKEN_RATIO * 0.14
NEW_TOKEN_RATIO_DECAY = (INIT_NEW_TOKEN_RATIO - MIN_NEW_TOKEN_RATIO) / 600
RETRACT_DECODE_STEPS = 20
PAGE = 1  # tokens a request's admission adds for its page (SGLang's page_size 1)


class PrefillAdmission:
    params: EngineParams
    cache: RadixCache
    waiting: list[Req]  # in scheduling order (priority, then entry to the queue)
    prefilling: list[Req]
    running: list[Req]
    # the new-token ratio: `_ratio_base` less NEW_TOKEN_RATIO_DECAY per decode step since
    # (counted in whole steps: a decode stretch decays as its steps one by one would)
    _ratio_base: float
    _ratio_steps: int

    if TYPE_CHECKING:
        @property
        def num_running(self) -> int: ...

        def _retract(self, req: Req, now: float) -> None: ...

    # ---- the new-token ratio --------------------------------------------------------

    @property
    def new_token_ratio(self) -> float:
        steps = self._ratio_steps if self._ratio_steps > 0 else 0
        ratio = self._ratio_base - steps * NEW_TOKEN_RATIO_DECAY
        return ratio if ratio > MIN_NEW_TOKEN_RATIO else MIN_NEW_TOKEN_RATIO

    def _ratio_decayed(self) -> bool:
        """Whether the ratio is at its floor (decode steps no longer lower it)."""
        return self._ratio_base - self._ratio_steps * NEW_TOKEN_RATIO_DECAY \
            <= MIN_NEW_TOKEN_RATIO

    def _reset_ratio(self, base: float = INIT_NEW_TOKEN_RATIO) -> None:
        self._ratio_base, self._ratio_steps = base, 0

    def _ratio_after_retraction(self) -> None:
        """SGLang's estimate_new_token_ratio_after_retract, over the requests kept."""
        decoded = sum(r.decoder.completion_tokens for r in self.running)
        asked = sum(r.decoder.completion_tokens + r.decoder.reserve_bound()
                    for r in self.running)
        ratio = (decoded + RETRACT_DECODE_STEPS * len(self.running)) / (asked + 1)
        self._reset_ratio(ratio if ratio < 1.0 else 1.0)

    def _promised(self, req: Req, ratio: float) -> float:
        """What a running request may still write, as an admission counts it."""
        left = req.decoder.reserve_bound()
        left = left if left < CLIP_MAX_NEW_TOKENS else CLIP_MAX_NEW_TOKENS
        return left if req.decoder.ignores_eos else left * ratio

    # ---- a prefill pass ----------------------------------------------------------------

    def _admit_waiting(self, start: float) -> None:
        """Moves the requests that can start from `waiting` to `prefilling`, within this
        pass's chunk budget (what the requests mid-prefill leave of it)."""
        waiting = self.waiting
        if not waiting:
            return
        params = self.params
        if self.num_running >= params.max_running_requests and not params.enable_priority:
            return  # every slot taken, nothing to preempt
        budget = params.chunked_prefill_size
        offset = 0.0
        for req in self.prefilling:  # continuing: its next chunk comes first
            n = len(req.key) - req.done_tokens
            if n <= budget:  # its last chunk: its output is promised in this pass
                offset += self._clipped(req)
            budget -= n if n < budget else budget
        if budget <= 0:
            return
        ratio = self.new_token_ratio
        for r in self.running:  # _promised's, inlined: every running request, each pass
            left = r.decoder.reserve_bound()
            left = left if left < CLIP_MAX_NEW_TOKENS else CLIP_MAX_NEW_TOKENS
            offset += left if r.decoder.ignores_eos else left * ratio
        lpm = self._sorted_waiting(start) if (
            params.schedule_policy == "lpm" and len(waiting) <= 128) else None
        i = 0
        while True:
            if lpm is None:  # fcfs: the head of the queue each time
                if not waiting:
                    return
                req = waiting[0]
            else:
                if i == len(lpm):
                    return
                req, i = lpm[i], i + 1
            if self.num_running >= params.max_running_requests:
                freed = self._preempt_for(req, start, offset)
                if freed is None:
                    return  # every slot taken (and nothing to preempt for it)
                offset -= freed
            took = self._admit(req, start, offset)
            if took is None:
                return  # no room (SGLang: NO_TOKEN): the head of the line waits
            waiting.remove(req)
            self.prefilling.append(req)
            if took <= budget:
                offset += self._clipped(req)
            budget -= took
            if budget <= 0:
                return  # the chunk budget is spent (the last one maybe cut to a chunk)

    @staticmethod
    def _clipped(req: Req) -> int:
        left = req.decoder.reserve_bound()
        return left if left < CLIP_MAX_NEW_TOKENS else CLIP_MAX_NEW_TOKENS

    def _sorted_waiting(self, now: float) -> list[Req]:
        """The waiting queue in lpm order: longest cached prefix first within a priority."""
        prio = self.params.enable_priority
        match = {r.rid: self.cache.match_prefix(r.full_key(), now)[0] for r in self.waiting}
        return sorted(self.waiting, key=lambda r: (-r.priority if prio else 0, -match[r.rid],
                                                  r.queued_at))

    def _admit(self, req: Req, now: float, offset: float) -> int | None:
        """Admits `req` if its uncached prompt, its output to come and a page fit in what
        the pool has free or evictable less `offset` (what the pass has promised); the
        tokens it prefills, or None."""
        key = req.full_key()
        matched, node = self.cache.match_prefix(key, now, lock=True)
        matched = min(matched, len(key) - 1)  # the last token is always recomputed for logits
        new = len(key) - matched
        cache = self.cache
        if new + self._clipped(req) + PAGE >= cache.available + cache.evictable - offset:
            self.cache.unlock(node)
            return None
        self.cache.alloc(new)
        req.reserved, req.node, req.key = new, node, key
        req.done_tokens = matched
        if not req.admitted_once:
            req.cached_tokens = max(0, matched - 1)  # the salt token is not a prompt token
            req.admitted_once = True
        req.state = ReqState.PREFILL
        return new

    def _preempt_for(self, req: Req, now: float, offset: float) -> float | None:
        """Every slot is taken: retracts running requests of lower priority (by more than
        the threshold; lowest first, then newest) whose promised tokens cover what `req`
        needs beyond what the pool has, freeing their slots; the tokens they had promised,
        or None when it retracted none."""
        if not self.params.enable_priority:
            return None
        ratio = self.new_token_ratio
        cache = self.cache
        key = req.full_key()
        matched = min(cache.match_prefix(key, now)[0], len(key) - 1)
        need = len(key) - matched + self._clipped(req) + PAGE \
            - (cache.available + cache.evictable - offset)
        victims, freed = [], 0.0
        for r in sorted(self.running, key=lambda r: (r.priority, -r.queued_at)):
            if req.priority - r.priority <= self.params.preemption_threshold:
                break
            victims.append(r)
            promised = self._promised(r, ratio)
            freed += promised
            need -= promised
            if need <= 0:
                break
        if not victims or need > 0:
            return None
        for victim in victims:
            self._retract(victim, now)
        return freed
