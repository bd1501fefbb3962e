"""Runs the sim engine core in real time, in-process: what the HTTP server serves. SIMULATED.

Virtual time is real monotonic time since start divided by `time_scale`. A driver task
sleeps until the core's next iteration ends, steps it, and hands each request's events to
its stream. Zero-cost mode makes every iteration take no time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ostinato.config import SimEngineConfig
from workers.kv_events import BlockRemoved, BlockStored
from workers.sim.cost_model import CostModel, Profile, load_profile
from workers.sim.kv_publisher import make_publisher
from workers.sim.scheduler import EngineEvent, EngineParams, Req, SimEngineCore
from workers.sim.text import Decoder
from workers.sim.token_ids import pack


@dataclass(frozen=True)
class SimRequest:
    rid: str
    prompt_ids: list[int]
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    no_stop_trim: bool = False  # the text keeps the stop string it ends at (SGLang's)
    ignore_eos: bool = False
    seed: int = 0
    min_new_tokens: int = 0  # no EOS before this many tokens (SGLang's min_new_tokens)
    priority: int = 0
    cache_salt: str = ""
    script: str | None = None  # what the simulated model answers (workers/sim/behavior.py)
    preamble: str = ""  # its thinking before the answer (workers/sim/behavior.py `thinking`)


def engine_params(config: SimEngineConfig, profile: Profile) -> EngineParams:
    return EngineParams(
        max_total_tokens=config.max_total_tokens or profile.kv_capacity_tokens,
        chunked_prefill_size=config.chunked_prefill_size or profile.chunked_prefill_size,
        max_running_requests=config.max_running_requests or profile.max_running_requests,
        schedule_policy=config.schedule_policy,
        enable_priority=config.enable_priority,
        preemption_threshold=config.preemption_threshold,
        block_size=profile.block_size,
    )


# SGLang's /health_generate requests (rid HEALTH_CHECK_...) run with log_metrics=False: they
# are left out of the engine's metrics, here too.
HEALTH_CHECK_RID = "HEALTH_CHECK_"


class EngineCounters:
    def __init__(self) -> None:
        self.completed = 0
        self.aborted = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.cached_tokens = 0
        self.blocks_stored = 0
        self.blocks_removed = 0


class RealtimeSimEngine:
    def __init__(self, config: SimEngineConfig) -> None:
        self.config = config
        self.profile = load_profile(config.profile)
        self.params = engine_params(config, self.profile)
        self.core = SimEngineCore(CostModel(self.profile, zero_cost=config.zero_cost), self.params)
        self.counters = EngineCounters()
        self.kv_publisher = make_publisher(config.kv_events_config)  # SGLang's ZMQ KV events
        self._streams: dict[str, asyncio.Queue[EngineEvent]] = {}
        self._t0 = time.monotonic()
        self._wake = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> float:
        return (time.monotonic() - self._t0) / self.config.time_scale

    def _ensure_driver(self) -> None:
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        while True:
            nxt = self.core.next_event_time()
            if nxt is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = (nxt - self.now()) * self.config.time_scale
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue  # re-plan: a new request may have changed the schedule
            self._deliver(self.core.step(max(nxt, self.now())))
            await asyncio.sleep(0)  # let streams run, even in zero-cost mode

    def _deliver(self, events: list[EngineEvent]) -> None:
        for event in events:
            if not event.rid.startswith(HEALTH_CHECK_RID):
                self.counters.generation_tokens += event.new_tokens
                if event.finish_reason is not None:
                    aborted = event.finish_reason.get("type") == "abort"
                    self.counters.aborted += aborted
                    self.counters.completed += not aborted
            queue = self._streams.get(event.rid)
            if queue is not None:
                queue.put_nowait(event)
        kv_batch = self.core.cache.take_events()
        if kv_batch and self.kv_publisher is not None:
            self.kv_publisher.publish(kv_batch)
        for kv in kv_batch:
            if isinstance(kv, BlockStored):
                self.counters.blocks_stored += len(kv.block_hashes)
            elif isinstance(kv, BlockRemoved):
                self.counters.blocks_removed += len(kv.block_hashes)

    def validate(self, req: SimRequest) -> None:
        """Raises ValueError for a request the engine refuses, the context window's in
        SGLang's words (tokenizer_manager: the input, then input plus max_new_tokens)."""
        window, given = self.config.context_length, len(req.prompt_ids)
        if given >= window:
            raise ValueError(f"The input ({given} tokens) is longer than the model's context "
                             f"length ({window} tokens).")
        if given + req.max_new_tokens > window:
            raise ValueError(
                f"Requested token count exceeds the model's maximum context length of {window} "
                f"tokens. You requested a total of {given + req.max_new_tokens} tokens: {given} "
                f"tokens from the input messages and {req.max_new_tokens} tokens for the "
                "completion. Please reduce the number of tokens in the input messages or the "
                "completion to fit within the limit.")
        if len(req.prompt_ids) + 1 >= self.params.max_total_tokens:
            raise ValueError(f"prompt of {len(req.prompt_ids)} tokens exceeds the KV pool "
                             f"({self.params.max_total_tokens} tokens)")
        if req.prompt_ids and not 0 <= min(req.prompt_ids) <= max(req.prompt_ids) < 1 << 64:
            raise ValueError("token ids must lie in [0, 2**64)")

    async def generate(self, req: SimRequest) -> AsyncIterator[EngineEvent]:
        """Streams the request's events; the last one is finished."""
        self.validate(req)
        self._ensure_driver()
        decoder = Decoder(req.prompt_ids, max_new_tokens=req.max_new_tokens, stop=req.stop,
                          no_stop_trim=req.no_stop_trim, ignore_eos=req.ignore_eos,
                          seed=req.seed, script=req.script,
                          min_new_tokens=req.min_new_tokens, preamble=req.preamble)
        queue: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._streams[req.rid] = queue
        now = self.now()
        self._deliver(self.core.step(now))
        self.core.submit(Req(rid=req.rid, prompt_ids=pack(req.prompt_ids), decoder=decoder,
                             priority=req.priority, salt=req.cache_salt), now)
        self._wake.set()
        finished = False
        try:
            while not finished:
                event = await queue.get()
                finished = event.finished
                if finished and not req.rid.startswith(HEALTH_CHECK_RID):
                    self.counters.prompt_tokens += event.prompt_tokens
                    self.counters.cached_tokens += event.cached_tokens
                yield event
        finally:
            self._streams.pop(req.rid, None)
            if not finished:  # the caller went away: SGLang aborts the request too
                self.abort(req.rid)

    def abort(self, rid: str) -> bool:
        event = self.core.abort(rid, self.now())
        if event is None:
            return False
        self._deliver([event])
        self._wake.set()
        return True

    def abort_all(self) -> int:
        """Aborts every request the engine holds (SGLang's AbortReq.abort_all); how many."""
        now = self.now()
        events = [e for rid in self.core.rids() if (e := self.core.abort(rid, now)) is not None]
        if events:
            self._deliver(events)
            self._wake.set()
        return len(events)

    def close(self) -> None:
        if self.kv_publisher is not None:
            self.kv_publisher.close()

    def flush_cache(self) -> bool:
        flushed = self.core.flush_cache()
        self._deliver([])
        return flushed
