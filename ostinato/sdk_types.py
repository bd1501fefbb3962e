"""What the SDK returns, and the proto building shared by Client and AsyncClient."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2
from opentelemetry import propagate

from ostinato.errors import OstinatoError, error_for
from ostinato.v1 import common_pb2, gateway_pb2

# ---- retries through a gateway restart (shared by Client and AsyncClient) ---------------
#
# gRPC's own retry policy, as the channel's service config:
# - Every method waits for the gateway to be reachable before it is sent (wait-for-ready),
#   within its deadline, so an operation made while the gateway restarts goes through
#   once it is back.
# - StartProgram, EndProgram and CacheStats are idempotent: the SDK names every program
#   (a uuid when the caller gives no id), so a StartProgram sent twice opens one program,
#   and the planner answers an EndProgram repeated after its answer was lost with the
#   same summary. They are retried on UNAVAILABLE with exponential backoff, and have a
#   default deadline of UNARY_DEADLINE_S when the client sets none.
# - A Call is retried on UNAVAILABLE only while the gateway has sent nothing back (gRPC
#   retries a stream until its first response). Once text has streamed, a failure is the
#   caller's to handle. The SDK names every call (a uuid), so a retried Call is the same
#   call to the planner: it runs as the call's next attempt once the first is cancelled
#   (the planner cancels it when the gateway that admitted it goes away), and a summary
#   counts it once.
# RunProgram is not retried (a second one would run the DAG again); it waits for ready.
GATEWAY_SERVICE = "ostinato.v1.Gateway"
UNARY_DEADLINE_S = 60.0
_BACKOFF = {"initialBackoff": "0.2s", "maxBackoff": "2s", "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"]}
SERVICE_CONFIG: dict[str, Any] = {"methodConfig": [
    {"name": [{"service": GATEWAY_SERVICE, "method": m}
              for m in ("StartProgram", "EndProgram", "CacheStats")],
     "waitForReady": True, "timeout": f"{UNARY_DEADLINE_S:g}s",
     "retryPolicy": {"maxAttempts": 5, **_BACKOFF}},
    {"name": [{"service": GATEWAY_SERVICE, "method": "Call"}],
     "waitForReady": True, "retryPolicy": {"maxAttempts": 3, **_BACKOFF}},
    {"name": [{"service": GATEWAY_SERVICE, "method": "RunProgram"}], "waitForReady": True},
]}
# The channel's options: the policy above, and a gateway that is back is dialled again
# within 2 s (gRPC's reconnect backoff grows to 120 s by default).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def new_id(length: int = 16) -> str:
    """A program or call id the SDK names, so that a retried request is recognized."""
    return uuid.uuid4().hex[:length]


MessageLike = Mapping[str, Any] | tuple[str, str]
ToolLike = Mapping[str, Any]  # OpenAI's {"type": "function", "function": {...}}, or its inner part

_CACHE_MODES = {
    None: common_pb2.CACHE_MODE_UNSPECIFIED, "off": common_pb2.CACHE_MODE_OFF,
    "exact": common_pb2.CACHE_MODE_EXACT, "semantic": common_pb2.CACHE_MODE_SEMANTIC,
}
_CACHE_HITS = {common_pb2.CACHE_HIT_EXACT: "exact", common_pb2.CACHE_HIT_SEMANTIC: "semantic"}


def translate(exc: grpc.RpcError) -> OstinatoError:
    """The SDK exception (ostinato/errors.py) for a failed RPC."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
    return error_for(code, details or "", trailers or ())


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text

    def args(self) -> dict[str, Any]:
        return dict(json.loads(self.arguments or "{}"))


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

    def message(self) -> dict[str, Any]:
        """This answer as the assistant message to put in the next call's history."""
        return {"role": "assistant", "content": self.text, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in self.tool_calls]}


@dataclass(frozen=True)
class CacheStats:
    """The answer caches' counters of the gateway that answered."""

    enabled: bool
    redis_up: bool
    counts: dict[str, int]  # hit_exact, hit_semantic, miss, near_miss_rejected, redis_error ...
    index_entries: int
    lookup_ms_p50: float
    lookup_ms_p99: float


def cache_stats(resp: gateway_pb2.CacheStatsResponse) -> CacheStats:
    return CacheStats(enabled=resp.enabled, redis_up=resp.redis_up, counts=dict(resp.counts),
                      index_entries=resp.index_entries, lookup_ms_p50=resp.lookup_ms_p50,
                      lookup_ms_p99=resp.lookup_ms_p99)


@dataclass(frozen=True)
class ProgramSummary:
    program_id: str
    calls_completed: int
    calls_failed: int
    usage: Usage
    attained_service_s: float
    elapsed_s: float


def _message(m: MessageLike) -> common_pb2.Message:
    if isinstance(m, tuple):
        role, content = m
        return common_pb2.Message(role=role, content=content)
    calls = []
    for c in m.get("tool_calls") or ():
        fn = c.get("function", c)
        args = fn.get("arguments", "{}")
        calls.append(common_pb2.ToolCall(id=c.get("id", ""), name=fn.get("name", ""),
                                         arguments=args if isinstance(args, str) else json.dumps(args)))
    return common_pb2.Message(role=m.get("role", ""), content=m.get("content") or "",
                              name=m.get("name", ""), tool_call_id=m.get("tool_call_id", ""),
                              tool_calls=calls)


def _tool(t: ToolLike) -> common_pb2.Tool:
    fn = t.get("function", t)
    params = fn.get("parameters")
    return common_pb2.Tool(name=fn.get("name", ""), description=fn.get("description", ""),
                           parameters_json=json.dumps(params) if params is not None else "",
                           strict=bool(fn.get("strict", False)))


def _tool_choice(choice: str | None) -> common_pb2.ToolChoice:
    """"auto", "none", "required", or the name of one of the tools."""
    modes = {None: common_pb2.TOOL_CHOICE_MODE_UNSPECIFIED, "auto": common_pb2.TOOL_CHOICE_MODE_AUTO,
             "none": common_pb2.TOOL_CHOICE_MODE_NONE,
             "required": common_pb2.TOOL_CHOICE_MODE_REQUIRED}
    if choice in modes:
        return common_pb2.ToolChoice(mode=modes[choice])
    return common_pb2.ToolChoice(mode=common_pb2.TOOL_CHOICE_MODE_FUNCTION, function_name=str(choice))


def _response_format(schema: Mapping[str, Any] | None, json_object: bool) -> common_pb2.ResponseFormat:
    if schema is not None:
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                                         schema_json=json.dumps(schema))
    if json_object:
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
    return common_pb2.ResponseFormat()


def program_options(
    program_id: str | None, deadline_s: float | None, program_class: str, reject_when_late: bool,
    labels: Mapping[str, str] | None,
) -> common_pb2.ProgramOptions:
    opts = common_pb2.ProgramOptions(program_id=program_id or new_id(32), program_class=program_class,
                                     reject_when_late=reject_when_late, labels=dict(labels or {}))
    if deadline_s is not None:
        opts.deadline.CopyFrom(duration_pb2.Duration(seconds=int(deadline_s),
                                                     nanos=int((deadline_s % 1) * 1e9)))
    return opts


def call_spec(
    *,
    messages: Sequence[MessageLike] | None = None,
    prompt: str | None = None,
    call_id: str | None = None,
    thread_id: str | None = None,
    parents: Iterable[str] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
    cache: str | None = None,
    semantic_threshold: float = 0.0,
    expected_output_tokens: int = 0,
    tags: Sequence[str] = (),
    model: str = "",
    ignore_eos: bool = False,
    tools: Sequence[ToolLike] = (),
    tool_choice: str | None = None,
    json_schema: Mapping[str, Any] | None = None,
    json_object: bool = False,
    restart_on_failure: bool = False,
) -> common_pb2.CallSpec:
    if cache not in _CACHE_MODES:
        raise ValueError(f"cache must be one of off, exact, semantic; got {cache!r}")
    sampling = common_pb2.SamplingParams(stop=list(stop or ()), ignore_eos=ignore_eos)
    if max_tokens is not None:
        sampling.max_new_tokens = max_tokens
    if temperature is not None:
        sampling.temperature = temperature
    if top_p is not None:
        sampling.top_p = top_p
    if seed is not None:
        sampling.seed = seed
    return common_pb2.CallSpec(
        call_id=call_id or "", thread_id=thread_id or "", parent_call_ids=list(parents),
        messages=[_message(m) for m in messages or ()], prompt=prompt or "", sampling=sampling,
        cache=common_pb2.CachePolicy(mode=_CACHE_MODES[cache], semantic_threshold=semantic_threshold),
        hints=common_pb2.CallHints(expected_output_tokens=expected_output_tokens, tags=list(tags)),
        model=model, tools=[_tool(t) for t in tools], tool_choice=_tool_choice(tool_choice),
        response_format=_response_format(json_schema, json_object),
        restart_on_failure=restart_on_failure,
    )


def call_output(result: common_pb2.CallResult) -> CallOutput:
    return CallOutput(
        call_id=result.call_id, text=result.text, finish_reason=result.finish_reason,
        usage=Usage(result.usage.prompt_tokens, result.usage.completion_tokens,
                    result.usage.cached_tokens),
        worker_id=result.worker_id, latency_s=result.timings.total_s,
        queue_s=result.timings.queue_s, engine_s=result.timings.engine_s,
        priority=result.priority, simulated=result.simulated,
        cache_hit=_CACHE_HITS.get(result.cache_hit, "miss"),
        tool_calls=tuple(ToolCall(c.id, c.name, c.arguments) for c in result.tool_calls),
    )


def summary(resp: gateway_pb2.EndProgramResponse) -> ProgramSummary:
    s = resp.summary
    return ProgramSummary(
        program_id=s.program_id, calls_completed=s.calls_completed, calls_failed=s.calls_failed,
        usage=Usage(s.usage.prompt_tokens, s.usage.completion_tokens, s.usage.cached_tokens),
        attained_service_s=s.attained_service_s, elapsed_s=s.elapsed_s,
    )


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def traced(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`metadata` plus the caller's current OpenTelemetry context (W3C traceparent), so the
    mesh continues the caller's trace; unchanged when the caller has no span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*metadata, *carrier.items()) if carrier else metadata


class ThreadTracker:
    """Default dependencies: a call depends on the previous call of its thread."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def parents(self, thread_id: str | None, parents: Iterable[str] | None) -> list[str]:
        if parents is not None:
            return list(parents)
        last = self._last.get(thread_id or "main")
        return [last] if last else []

    def record(self, thread_id: str | None, call_id: str) -> None:
        self._last[thread_id or "main"] = call_id
