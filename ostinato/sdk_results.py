"""What the SDK returns: a call's output, a program's summary, the cache's statistics, and
their parsing from the gateway's messages (what it sends: ostinato/sdk_types.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ostinato.v1 import common_pb2, gateway_pb2

_CACHE_HITS = {common_pb2.CACHE_HIT_EXACT: "exact", common_pb2.CACHE_HIT_SEMANTIC: "semantic"}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int = 0  # of completion_tokens, the thinking's (reasoning models)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text

    def args(self) -> dict[str, Any]:
        return dict(json.loads(self.arguments or "{}"))


@dataclass(frozen=True)
class TopLogprob:
    """One of the most likely tokens at a position of the answer."""

    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """An output token's log probability, and the most likely alternatives at its position
    (`top_logprobs` of them, when the call asked for some)."""

    token: str
    logprob: float
    top_logprobs: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class CallOutput:
    call_id: str
    text: str
    finish_reason: str
    usage: Usage
    worker_id: str
    latency_s: float
    queue_s: float
    engine_s: float
    priority: int
    simulated: bool
    cache_hit: str  # "miss" | "exact" | "semantic"
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""  # a reasoning model's thinking before `text` (gateway.reasoning_parser)
    logprobs: tuple[TokenLogprob, ...] = ()  # each output token's, when the call asked (logprobs=True)

    def message(self) -> dict[str, Any]:
        """This answer as the assistant message to put in the next call's history (without
        its thinking, which reasoning models' chat templates leave out of later turns)."""
        return {"role": "assistant", "content": self.text, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in self.tool_calls]}


@dataclass(frozen=True)
class CacheStats:
    """The answer caches' counters of the gateway that answered."""

    enabled: bool  # the answer caches are on; when off, the rest is empty
    redis_up: bool  # their last Redis operation succeeded (False when they are off)
    counts: dict[str, int]  # hit_exact, hit_semantic, miss, near_miss_rejected, redis_error ...
    index_entries: int
    lookup_ms_p50: float
    lookup_ms_p99: float
    server_vector_search: bool = False  # the Redis server offers vector search (detected at start)


def parse_cache_stats(resp: gateway_pb2.CacheStatsResponse) -> CacheStats:
    return CacheStats(enabled=resp.enabled, redis_up=resp.redis_up, counts=dict(resp.counts),
                      index_entries=resp.index_entries, lookup_ms_p50=resp.lookup_ms_p50,
                      lookup_ms_p99=resp.lookup_ms_p99,
                      server_vector_search=resp.server_vector_search)


@dataclass(frozen=True)
class ProgramSummary:
    program_id: str
    calls_completed: int
    calls_failed: int
    usage: Usage
    attained_service_s: float
    elapsed_s: float
    tenant: str = ""  # the tenant the program belongs to (its API key's)
    calls_cancelled: int = 0  # cancelled before they finished (their usage is counted)
    # still running when it ended: they run to their end, outside this summary
    calls_running: int = 0


def parse_call_output(result: common_pb2.CallResult) -> CallOutput:
    return CallOutput(
        call_id=result.call_id, text=result.text, finish_reason=result.finish_reason,
        usage=Usage(result.usage.prompt_tokens, result.usage.completion_tokens,
                    result.usage.cached_tokens, result.usage.reasoning_tokens),
        worker_id=result.worker_id, latency_s=result.timings.total_s,
        queue_s=result.timings.queue_s, engine_s=result.timings.engine_s,
        priority=result.priority, simulated=result.simulated,
        cache_hit=_CACHE_HITS.get(result.cache_hit, "miss"),
        tool_calls=tuple(ToolCall(c.id, c.name, c.arguments) for c in result.tool_calls),
        reasoning=result.reasoning_content,
        logprobs=tuple(TokenLogprob(t.token, t.logprob, tuple(
            TopLogprob(a.token, a.logprob) for a in t.top_logprobs)) for t in result.logprobs),
    )


def parse_summary(s: common_pb2.ProgramSummary) -> ProgramSummary:
    return ProgramSummary(
        program_id=s.program_id, calls_completed=s.calls_completed, calls_failed=s.calls_failed,
        usage=Usage(s.usage.prompt_tokens, s.usage.completion_tokens, s.usage.cached_tokens,
                    s.usage.reasoning_tokens),
        attained_service_s=s.attained_service_s, elapsed_s=s.elapsed_s, tenant=s.tenant,
        calls_cancelled=s.calls_cancelled, calls_running=s.calls_running,
    )
