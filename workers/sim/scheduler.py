"""The sim engine's core: an SGLang-like scheduler stepped in virtual time. SIMULATED.

Modelled on SGLang's Scheduler (python/sglang/srt/managers/scheduler.py, schedule_policy.py):
- a waiting queue ordered by priority (when enabled; higher first), then by policy
  (`fcfs`: arrival; `lpm`: longest cached prefix first);
- continuous batching: an iteration is either a prefill batch (new requests, up to
  `chunked_prefill_size` new tokens, a long prompt continuing over several iterations)
  or a decode batch of every running request (one token each);
- the radix cache (workers/sim/radix.py) supplies cached prefixes; prompts and outputs are
  inserted when their KV exists; running requests hold references;
- priority preemption: a waiting request that cannot be admitted retracts running
  requests whose priority is lower by more than `preemption_threshold`;
- retraction when KV runs out during decode (SGLang's `length` policy: the fewest output
  tokens, then the longest prompt, goes back to the end of the queue, its output's KV
  freed and recomputed);
- iteration times from the roofline cost model; `fast_forward` runs decode-only stretches
  up to the next request finish as one step instead of one Python loop per token (also
  while the head of the waiting queue cannot be admitted: nothing changes that before a
  request finishes).

Without stream events (`stream_events=False`), requests with a FixedLengthDecoder follow the
engine's decode-step counter (workers/sim/followers.py): a decode iteration costs O(1) plus
its finishers, not one call per running request; what the step-by-step path would allocate,
evict and touch in the radix cache is done in the same order, so results are the same.
Admission to prefill (queue order, KV reservation, preemption) is in workers/sim/admission.py;
the types the core takes and gives (EngineParams, Req, EngineEvent) in workers/sim/requests.py.

Pure and synchronous: `submit`, `abort`, `step(now)` and `next_event_time()`.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from workers.sim.admission import CLIP_MAX_NEW_TOKENS, PrefillAdmission
from workers.sim.cost_model import CostModel
from workers.sim.followers import Followers
from workers.sim.radix import CacheFull, RadixCache
from workers.sim.release import RequestRelease, retraction_order
from workers.sim.requests import EngineEvent, EngineParams, Req, ReqState

__all__ = ["CLIP_MAX_NEW_TOKENS", "EngineEvent", "EngineParams", "Req", "ReqState",
           "SimEngineCore"]


@dataclass
class _Iteration:
    kind: str  # "prefill" | "decode"
    start: float
    ends: list[float]  # cumulative end time of each step (decode stretches have several)
    reqs: list[Req]  # a lazy decode iteration's batch is whatever is running
    chunks: list[tuple[Req, int]] = field(default_factory=list)
    lazy: bool = False  # a decode batch of followers only (see SimEngineCore._complete_lazy)
    head: Req | None = None  # the blocked head of the queue, matched again at each step

    @property
    def end(self) -> float:
        return self.ends[-1]


class SimEngineCore(PrefillAdmission, RequestRelease):
    def __init__(self, cost: CostModel, params: EngineParams) -> None:
        self.cost = cost
        self.params = params
        self.cache = RadixCache(params.max_total_tokens, params.block_size,
                                hash_blocks=params.kv_events)
        self.waiting: list[Req] = []  # kept in scheduling order (priority, then queued_at)
        self.prefilling: list[Req] = []  # admitted, prompt KV not complete (chunked prefill)
        self.running: list[Req] = []
        self._reqs: dict[str, Req] = {}
        self._current: _Iteration | None = None
        self.t = 0.0
        self.iterations = 0
        self.busy_s = 0.0
        if params.enable_priority:
            self._order = lambda r: (-r.priority, r.queued_at)
        else:
            self._order = lambda r: (0, r.queued_at)
        # Running requests whose FixedLengthDecoder follows the decode-step counter.
        self._followers = Followers(enabled=not params.stream_events)
        self._runs = itertools.count(1)  # Req._ran
        self._reset_ratio()  # the new-token ratio (workers/sim/admission.py)

    # ---- API -------------------------------------------------------------------------

    def submit(self, req: Req, now: float) -> None:
        if req.rid in self._reqs:
            raise ValueError(f"duplicate rid {req.rid!r}")
        room = self.params.max_total_tokens - len(req.prompt_ids) - 3  # salt, page, last
        if room < 0:
            raise ValueError(f"prompt of {len(req.prompt_ids)} tokens exceeds the KV pool "
                             f"({self.params.max_total_tokens} tokens)")
        # SGLang's init_req_max_new_tokens: no more output than the pool can ever hold
        # beside the prompt (max_new_tokens_for_memory); a lone request always fits
        req.decoder.clip_max_new(room)
        if not self._reqs:
            self._reset_ratio()  # an idle engine starts again at the initial ratio
        if self._current is None:
            self.t = max(self.t, now)
        elif self._current.kind == "decode" and len(self._current.ends) > 1:
            self._truncate(now)  # new work joins at the next step boundary
        req.arrival = req.queued_at = now
        req.state = ReqState.WAITING
        self._reqs[req.rid] = req
        bisect.insort(self.waiting, req, key=self._order)

    def abort(self, rid: str, now: float) -> EngineEvent | None:
        req = self._reqs.get(rid)
        if req is None:
            return None
        if self._current is not None and self._current.kind == "decode" \
                and len(self._current.ends) > 1:
            self._truncate(now)  # the steps after this one run without it
            if self._current.lazy:
                self._run_steps_before(now)  # as stepping would have (its output so far)
        it = self._current
        if req.state is ReqState.WAITING:
            self.waiting.remove(req)
        self._release(req, now, insert=False)
        event = self._finish(req, now, {"type": "abort", "message": f"Abort request {rid}"})
        if it is not None and (not self.running if it.lazy
                               else all(r.state is ReqState.FINISHED for r in it.reqs)):
            self._current = None  # nothing left in the iteration in flight
            self.t = max(self.t, now)
        return event

    def rids(self) -> list[str]:
        """The requests the engine holds (waiting, prefilling, running)."""
        return list(self._reqs)

    def next_event_time(self) -> float | None:
        """When the next iteration ends (so when `step` next has something to report)."""
        if self._current is None and self._has_work():
            self._current = self._schedule(self.t)
        return None if self._current is None else self._current.end

    def step(self, now: float) -> list[EngineEvent]:
        """Runs every iteration that ends by `now`; returns what happened, in time order."""
        events: list[EngineEvent] = []
        while True:
            if self._current is None:
                if not self._has_work():
                    break
                self._current = self._schedule(self.t)
                if self._current is None:
                    break
            if self._current.end > now:
                break
            it, self._current = self._current, None
            self.t = it.end
            self.iterations += len(it.ends)
            self.busy_s += it.end - it.start
            events += self._complete(it)
        if self._current is None:
            self.t = max(self.t, now)
        return events

    def flush_cache(self) -> bool:
        """SGLang flushes only when idle; returns whether it did."""
        if self._reqs:
            return False
        self.cache.reset()
        return True

    @property
    def num_running(self) -> int:
        return len(self.running) + len(self.prefilling)

    def generated_tokens(self, rid: str) -> int | None:
        """Output tokens a request has so far (as of the last iteration `step` ran); None if
        the engine does not hold it (never submitted, finished or aborted)."""
        req = self._reqs.get(rid)
        return None if req is None else req.decoder.completion_tokens

    def take_progress(self, every: int) -> list[tuple[str, int]]:
        """(rid, output tokens) of each running request whose output has reached a multiple
        of `every` since it was last listed here (as workers report progress), in the order
        of `running`. Costs O(listed), not O(running): call it after each `step`."""
        return self._followers.take_progress(every, self.running)

    # ---- scheduling --------------------------------------------------------------------

    def _has_work(self) -> bool:
        return bool(self.waiting or self.prefilling or self.running)

    def _schedule(self, start: float) -> _Iteration | None:
        it = self._prefill_batch(start)
        if it is None and self.running:
            it = self._decode_batch(start)
        return it

    def _prefill_batch(self, start: float) -> _Iteration | None:
        budget = self.params.chunked_prefill_size
        self._admit_waiting(start)
        chunks: list[tuple[Req, int]] = []
        for req in self.prefilling:
            if budget <= 0:
                break
            n = min(len(req.key) - req.done_tokens, budget)
            chunks.append((req, n))
            budget -= n
        if not chunks:
            return None
        # Position 0 of a key is the salt token: it names the cache namespace, costs nothing.
        dt = self.cost.prefill_time([(max(0, r.done_tokens - 1), n - (r.done_tokens == 0))
                                     for r, n in chunks])
        return _Iteration("prefill", start, [start + dt], [r for r, _ in chunks], chunks)

    def _decode_batch(self, start: float) -> _Iteration:
        retracted = False
        while len(self.running) > 1 and not self.cache.can_alloc(len(self.running)):
            # SGLang's default retraction policy (`length`: ScheduleBatch.
            # _get_decode_retraction_order): the fewest output tokens, then the longest
            # prompt, then the latest in the batch; not by priority (that is
            # --retraction-policy priority, which the worker does not pass)
            self._retract(min(reversed(self.running), key=retraction_order), start)
            retracted = True
        if retracted:  # the ratio is set from what the kept requests decoded: this step
            self._ratio_after_retraction()  # does not lower it (SGLang: set, or decay)
            self._ratio_steps = -1
        n = len(self.running)
        lazy = not self._followers.eager  # every running request follows the step counter
        batch: list[Req] = []
        if lazy:
            context = self._followers.context(n)
        else:
            batch = list(self.running)
            context = sum(len(r.prompt_ids) + r.decoder.completion_tokens for r in batch)
        steps = 1
        head = None
        if self.params.fast_forward and not self.prefilling:
            if self.waiting:
                # The head of the queue could not be admitted, and nothing a decode step does
                # changes that before a request finishes (less room, the same running set)
                # as long as the queue's order is fixed (not lpm's): run to that finish. Each
                # step would match the head's prefix again (LRU touch): _complete_lazy does.
                # Not after a retraction here: it freed KV since the head was tried.
                # Nor while the new-token ratio falls: each step it lowers what running
                # requests are promised, which may let the head in.
                fixed_order = (self.params.schedule_policy == "fcfs"
                               or len(self.waiting) > 128)
                ff = lazy and fixed_order and not retracted and self._ratio_decayed()
                if ff and self.num_running < self.params.max_running_requests:
                    head = self.waiting[0]
            else:
                ff = True
            if ff:
                steps = self._followers.min_remaining() if lazy else \
                    min(r.decoder.remaining_upper_bound() for r in batch)
                room = (self.cache.available + self.cache.evictable) // n
                steps = room if room < steps else steps  # max(1, min(steps, room)),
                if steps < 1:  # without the builtins' calls
                    steps = 1
        ends = self.cost.decode_ends(start, n, context, steps)
        return _Iteration("decode", start, ends, batch, lazy=lazy, head=head)

    def _run_steps_before(self, now: float) -> None:
        """Completes the steps of the lazy decode stretch in flight that end before `now`
        (none finishes a request); the step under way at `now` stays in flight."""
        it = self._current
        assert it is not None and it.lazy
        m = bisect.bisect_left(it.ends, now)
        if m == 0:
            return
        done = _Iteration("decode", it.start, it.ends[:m], [], lazy=True, head=it.head)
        self.t = done.end
        self.iterations += m
        self.busy_s += done.end - done.start
        events = self._complete(done)
        assert not events, "a stretch's requests finish at its end"
        if it.head is not None:  # the schedule at that step boundary tries the head again
            self.cache.match_prefix(it.head.full_key(), done.end)
        self._current = _Iteration("decode", done.end, it.ends[m:], [], lazy=True)

    def _truncate(self, now: float) -> None:
        it = self._current
        assert it is not None
        keep = bisect.bisect_left(it.ends, now) + 1
        del it.ends[keep:]

    # ---- effects -----------------------------------------------------------------------

    def _complete(self, it: _Iteration) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        if it.kind == "prefill":
            for req, n in it.chunks:
                if req.state is not ReqState.PREFILL:
                    continue  # aborted or retracted meanwhile
                req.done_tokens += n
                if req.done_tokens < len(req.key):
                    continue
                self._cache_progress(req, it.end)
                self.prefilling.remove(req)
                self.running.append(req)  # running is only appended to: in `_ran` order
                req._ran = next(self._runs)
                req.state = ReqState.RUNNING
                events += self._decode(req, it.ends)  # prefill samples the first token
                if req.state is ReqState.RUNNING:
                    self._followers.start(req)
            return events
        self._ratio_steps += len(it.ends)  # a decode step each lowers the new-token ratio
        if it.lazy and self.cache.can_alloc(len(it.ends) * len(self.running)):
            return self._complete_lazy(it)
        # One call per request (the step-by-step path, and the fallback when KV runs out).
        for req in it.reqs if not it.lazy else list(self.running):
            if req.state is ReqState.RUNNING:
                self._followers.unfollow(req)
                events += self._decode(req, it.ends)
        self._followers.stepped(len(it.ends), self.running)
        events.sort(key=lambda e: e.time)
        return events

    def _complete_lazy(self, it: _Iteration) -> list[EngineEvent]:
        """A decode stretch of followers, in O(1) plus its finishers, as if stepped: every
        running request gets a token a step, allocated in the order the step-by-step path
        allocates them; at each inner step boundary that path would have matched the
        blocked head's prefix again (an LRU touch), and the requests reaching their length
        at the last step finish in batch order, their KV inserted between allocations."""
        cache = self.cache
        ends = it.ends
        k, n = len(ends), len(self.running)
        if k > 1:
            head = it.head
            if head is None:
                cache.alloc((k - 1) * n)
            else:
                key = head.full_key()
                cache.alloc(n)  # step 1, the head's path as old as the stretch
                cache.match_prefix(key, ends[0])
                if k > 2:
                    cache.alloc((k - 2) * n)  # the head's path newer than all else
                    cache.match_prefix(key, ends[k - 2])
        finishing = self._followers.advance(k, self.running)
        if not finishing:
            cache.alloc(n)
            return []
        events = []
        done, now = 0, ends[-1]
        for i, req in finishing:  # batch order
            cache.alloc(i + 1 - done)  # last step's tokens up to and including this one
            done = i + 1
            self._release(req, now, insert=True)
            events.append(self._finish(req, now, req.decoder.finish_reason, "", k))
        if n > done:
            cache.alloc(n - done)
        return events

    def _decode(self, req: Req, ends: list[float]) -> list[EngineEvent]:
        """Runs up to len(ends) decode steps of one request (ends: each step's end time)."""
        d = req.decoder
        before_text, before = len(d.text), d.completion_tokens
        d.advance(len(ends))
        produced = d.completion_tokens - before
        now = ends[max(0, produced - 1)]
        if produced:
            try:
                self.cache.alloc(produced)
            except CacheFull:
                pass  # decode batches are sized to fit; at worst one token over, as SGLang can be
            else:
                req.reserved += produced
        if req.first_token_at is None:
            req.first_token_at = now
        if d.finished:
            self._release(req, now, insert=True)
            return [self._finish(req, now, d.finish_reason, d.text[before_text:], produced)]
        if not self.params.stream_events:
            return []
        return [EngineEvent(req.rid, now, delta=d.text[before_text:], new_tokens=produced,
                            prompt_tokens=len(req.prompt_ids), completion_tokens=d.completion_tokens,
                            cached_tokens=req.cached_tokens, first_token_at=req.first_token_at)]
