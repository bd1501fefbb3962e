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
- retraction when KV runs out during decode (lowest priority, then newest, goes back);
- iteration times from the roofline cost model; `fast_forward` runs decode-only stretches
  up to the next request finish as one step instead of one Python loop per token.

Pure and synchronous: `submit`, `abort`, `step(now)` and `next_event_time()`.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field

from cache.block_hash import salt_seed
from workers.sim.cost_model import CostModel
from workers.sim.radix import CacheFull, Node, RadixCache
from workers.sim.text import Decoder, FixedLengthDecoder

NEW_TOKEN_RATIO = 0.3  # share of max_new_tokens reserved at admission (SGLang decays 0.7 -> 0.1)


@dataclass(frozen=True)
class EngineParams:
    max_total_tokens: int
    chunked_prefill_size: int = 8192
    max_running_requests: int = 256
    schedule_policy: str = "fcfs"  # fcfs | lpm
    enable_priority: bool = True
    preemption_threshold: int = 10  # SGLang --priority-scheduling-preemption-threshold
    block_size: int = 16
    fast_forward: bool = False
    kv_events: bool = True  # block hashes and KV events (off in the cluster simulator)
    stream_events: bool = True  # an event per decode step; False: only finish events

    def __post_init__(self) -> None:
        if self.schedule_policy not in ("fcfs", "lpm"):
            raise ValueError(f"schedule_policy must be fcfs or lpm, got {self.schedule_policy!r}")
        if min(self.max_total_tokens, self.chunked_prefill_size, self.max_running_requests) < 1:
            raise ValueError("engine sizes must be positive")


class ReqState(enum.Enum):
    WAITING = "waiting"
    PREFILL = "prefill"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Req:
    rid: str
    prompt_ids: list[int]
    decoder: Decoder | FixedLengthDecoder
    priority: int = 0
    salt: str = ""
    arrival: float = 0.0
    state: ReqState = ReqState.WAITING
    cached_tokens: int = 0  # reported: prompt tokens served from cache at first admission
    done_tokens: int = 0  # tokens of `key` whose KV exists (cached or computed)
    reserved: int = 0  # pool tokens this request holds outside the tree
    node: Node | None = None  # locked radix node
    admitted_once: bool = False
    retractions: int = 0
    first_token_at: float | None = None
    key: tuple[int, ...] = field(default=())

    def full_key(self) -> tuple[int, ...]:
        """Salt token, prompt, then output so far: what this request's KV holds."""
        salt_token = -1 - (salt_seed(self.salt) >> 2)
        return (salt_token, *self.prompt_ids, *self.decoder.output_ids)


@dataclass(frozen=True)
class EngineEvent:
    rid: str
    time: float
    delta: str = ""
    new_tokens: int = 0
    finish_reason: dict[str, object] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    e2e_latency: float = 0.0
    first_token_at: float | None = None
    output_ids: tuple[int, ...] = ()
    text: str = ""

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class _Iteration:
    kind: str  # "prefill" | "decode"
    start: float
    ends: list[float]  # cumulative end time of each step (decode stretches have several)
    reqs: list[Req]
    chunks: list[tuple[Req, int]] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.ends[-1]


class SimEngineCore:
    def __init__(self, cost: CostModel, params: EngineParams) -> None:
        self.cost = cost
        self.params = params
        self.cache = RadixCache(params.max_total_tokens, params.block_size,
                                hash_blocks=params.kv_events)
        self.waiting: list[Req] = []
        self.prefilling: list[Req] = []  # admitted, prompt KV not complete (chunked prefill)
        self.running: list[Req] = []
        self._reqs: dict[str, Req] = {}
        self._current: _Iteration | None = None
        self.t = 0.0
        self.iterations = 0
        self.busy_s = 0.0

    # ---- API -------------------------------------------------------------------------

    def submit(self, req: Req, now: float) -> None:
        if req.rid in self._reqs:
            raise ValueError(f"duplicate rid {req.rid!r}")
        if len(req.prompt_ids) + 1 >= self.params.max_total_tokens:
            raise ValueError(f"prompt of {len(req.prompt_ids)} tokens exceeds the KV pool "
                             f"({self.params.max_total_tokens} tokens)")
        if self._current is None:
            self.t = max(self.t, now)
        elif self._current.kind == "decode" and len(self._current.ends) > 1:
            self._truncate(now)  # new work joins at the next step boundary
        req.arrival = now
        req.state = ReqState.WAITING
        self._reqs[req.rid] = req
        self.waiting.append(req)

    def abort(self, rid: str, now: float) -> EngineEvent | None:
        req = self._reqs.get(rid)
        if req is None:
            return None
        if req in self.waiting:
            self.waiting.remove(req)
        self._release(req, now, insert=False)
        event = self._finish(req, now, {"type": "abort", "message": f"Abort request {rid}"})
        it = self._current
        if it is not None and all(r.state is ReqState.FINISHED for r in it.reqs):
            self._current = None  # nothing left in the iteration in flight
            self.t = max(self.t, now)
        return event

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

    # ---- scheduling --------------------------------------------------------------------

    def _has_work(self) -> bool:
        return bool(self.waiting or self.prefilling or self.running)

    def _sorted_waiting(self, now: float) -> list[Req]:
        prio = self.params.enable_priority
        if self.params.schedule_policy == "lpm" and len(self.waiting) <= 128:
            match = {r.rid: self.cache.match_prefix(r.full_key(), now)[0] for r in self.waiting}
            return sorted(self.waiting, key=lambda r: (-r.priority if prio else 0, -match[r.rid],
                                                      r.arrival))
        return sorted(self.waiting, key=lambda r: (-r.priority if prio else 0, r.arrival))

    def _schedule(self, start: float) -> _Iteration | None:
        it = self._prefill_batch(start)
        if it is None and self.running:
            it = self._decode_batch(start)
        return it

    def _admit(self, req: Req, now: float) -> bool:
        key = req.full_key()
        matched, node = self.cache.match_prefix(key, now)
        matched = min(matched, len(key) - 1)  # the last token is always recomputed for logits
        self.cache.lock(node)
        new = len(key) - matched
        # Room for some of the output too, unless the engine is idle (then any fit will do).
        reserve_out = int(NEW_TOKEN_RATIO * req.decoder.remaining_upper_bound())
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

    def _preempt_for(self, req: Req, now: float) -> bool:
        """Retracts one running request of much lower priority; True if one was found."""
        if not self.params.enable_priority:
            return False
        victims = [r for r in self.running + self.prefilling
                   if req.priority - r.priority > self.params.preemption_threshold]
        if not victims:
            return False
        self._retract(min(victims, key=lambda r: (r.priority, -r.arrival)), now)
        return True

    def _prefill_batch(self, start: float) -> _Iteration | None:
        budget = self.params.chunked_prefill_size
        for req in self._sorted_waiting(start):
            while True:
                if self.num_running >= self.params.max_running_requests or not self._admit(req, start):
                    if self._preempt_for(req, start):
                        continue
                    break
                self.waiting.remove(req)
                self.prefilling.append(req)
                break
            if req.state is ReqState.WAITING:
                break  # head of line: SGLang stops at the first request that does not fit
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
        while len(self.running) > 1 and not self.cache.can_alloc(len(self.running)):
            self._retract(min(self.running, key=lambda r: (r.priority, -r.arrival)), start)
        batch = list(self.running)
        context = sum(len(r.prompt_ids) + r.decoder.completion_tokens for r in batch)
        steps = 1
        if self.params.fast_forward and not self.waiting and not self.prefilling:
            steps = max(1, min(r.decoder.remaining_upper_bound() for r in batch))
            room = (self.cache.available + self.cache.evictable) // len(batch)
            steps = max(1, min(steps, room))
        ends, t = [], start
        for j in range(steps):
            t += self.cost.decode_time(len(batch), context + j * len(batch))
            ends.append(t)
        return _Iteration("decode", start, ends, batch)

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
                self.running.append(req)
                req.state = ReqState.RUNNING
                events += self._decode(req, it.ends)  # prefill samples the first token
            return events
        for req in it.reqs:
            if req.state is ReqState.RUNNING:
                events += self._decode(req, it.ends)
        events.sort(key=lambda e: e.time)
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

    def _cache_progress(self, req: Req, now: float) -> None:
        """Moves the request's KV into the tree (SGLang cache_unfinished_req / cache_finished_req)."""
        self.cache.free(req.reserved)
        req.reserved = 0
        _, node = self.cache.insert(req.full_key(), now, salt_seed(req.salt))
        self.cache.lock(node)
        if req.node is not None:
            self.cache.unlock(req.node)
        req.node = node

    def _release(self, req: Req, now: float, insert: bool) -> None:
        if req.state is ReqState.RUNNING and insert:  # a partial prefill is not cached
            self._cache_progress(req, now)
        if req.reserved:
            self.cache.free(req.reserved)
            req.reserved = 0
        if req.node is not None:
            self.cache.unlock(req.node)
            req.node = None
        for queue in (self.running, self.prefilling):
            if req in queue:
                queue.remove(req)

    def _retract(self, req: Req, now: float) -> None:
        """Back to the waiting queue; its prompt stays cached (evictable), output recomputed."""
        was_running = req.state is ReqState.RUNNING
        self._release(req, now, insert=was_running)
        req.state = ReqState.WAITING
        req.retractions += 1
        self.waiting.append(req)

    def _finish(self, req: Req, now: float, reason: dict[str, object] | None, delta: str = "",
                produced: int = 0) -> EngineEvent:
        req.state = ReqState.FINISHED
        self._reqs.pop(req.rid, None)
        d = req.decoder
        return EngineEvent(
            req.rid, now, delta=delta, new_tokens=produced, finish_reason=reason,
            prompt_tokens=len(req.prompt_ids), completion_tokens=d.completion_tokens,
            cached_tokens=req.cached_tokens, e2e_latency=now - req.arrival,
            first_token_at=req.first_token_at, output_ids=tuple(d.output_ids), text=d.text,
        )
