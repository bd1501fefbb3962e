"""The sim engine's real-time request model used by its HTTP server.

Walking-skeleton timing model (SIMULATED): each request costs a fixed overhead, a
prefill time per prompt token and a decode time per output token, independently of other
requests. The faithful SGLang model (radix cache, continuous batching, priorities)
replaces this behind the same interface.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ostinato.config import SimEngineConfig
from workers.sim.text import Decoder


@dataclass(frozen=True)
class SimRequest:
    rid: str
    prompt_ids: list[int]
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    seed: int = 0
    priority: int = 0
    cache_salt: str = ""


@dataclass(frozen=True)
class SimOutput:
    delta: str
    text: str
    finish_reason: dict[str, object] | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    e2e_latency: float | None


@dataclass
class EngineCounters:
    running: int = 0
    completed: int = 0
    aborted: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    cached_tokens: int = 0
    started: float = field(default_factory=time.monotonic)


class RealtimeSimEngine:
    def __init__(self, config: SimEngineConfig) -> None:
        self.config = config
        self.counters = EngineCounters()
        self._aborted: set[str] = set()
        self._running: set[str] = set()

    def abort(self, rid: str) -> bool:
        if rid in self._running:
            self._aborted.add(rid)
            return True
        return False

    def flush_cache(self) -> None:
        """No prefix cache in this timing model; nothing to flush."""

    async def _sleep(self, seconds: float) -> None:
        if not self.config.zero_cost and seconds > 0:
            await asyncio.sleep(seconds)

    async def generate(self, req: SimRequest) -> AsyncIterator[SimOutput]:
        start = time.monotonic()
        decoder = Decoder(req.prompt_ids, max_new_tokens=req.max_new_tokens, stop=req.stop,
                          ignore_eos=req.ignore_eos, seed=req.seed)
        prompt_tokens, cached = len(req.prompt_ids), 0
        self._running.add(req.rid)
        self.counters.running += 1
        self.counters.prompt_tokens += prompt_tokens

        def out(delta: str, reason: dict[str, object] | None) -> SimOutput:
            return SimOutput(delta, decoder.text, reason, prompt_tokens, decoder.completion_tokens,
                             cached, time.monotonic() - start if reason else None)

        try:
            await self._sleep(self.config.overhead_s
                              + self.config.prefill_s_per_token * (prompt_tokens - cached))
            while not decoder.finished:
                if req.rid in self._aborted:
                    self.counters.aborted += 1
                    yield out("", {"type": "abort", "message": "Abort request " + req.rid})
                    return
                await self._sleep(self.config.decode_s_per_token)
                delta = decoder.step()
                self.counters.generation_tokens += 1
                yield out(delta, decoder.finish_reason)
            if decoder.completion_tokens == 0:  # max_new_tokens == 0: prefill only
                yield out("", decoder.finish_reason)
            self.counters.completed += 1
        finally:
            self.counters.running -= 1
            self._running.discard(req.rid)
            self._aborted.discard(req.rid)
