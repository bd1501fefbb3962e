"""The gateway's spans: one per program a client starts, one per call, one per answer-cache
lookup (an OpenAI-API conversation has none of its own: tracing/program_spans.py).

Subclasses of the call path's classes that open spans around what they inherit, so the
gRPC service and the HTTP API (which share GatewayCore) trace the same way and the call
path itself holds no span code. Attribute names: tracing/genai.py. The instrumented core
also tells its GatewayMetrics (gateway/metrics.py) how each program and call ended.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from cache.answers import AnswerCache, Hit
from cache.conversations import Continuation
from cache.fingerprint import SemanticKey
from gateway.call_items import CallItem, Delta, Granted
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.metrics import CANCELLED, GatewayMetrics
from ostinato import strict_json
from ostinato.deadlines import cut_by_deadline
from ostinato.v1 import common_pb2
from tracing import genai
from tracing.program_ends import ProgramEnds
from tracing.program_spans import ConversationTurns, ProgramSpans

_tracer = trace.get_tracer("ostinato.gateway")

_CACHE_HIT = {common_pb2.CACHE_HIT_EXACT: "exact", common_pb2.CACHE_HIT_SEMANTIC: "semantic"}
_SAMPLING = {"max_new_tokens": genai.REQUEST_MAX_TOKENS, "temperature": genai.REQUEST_TEMPERATURE,
             "top_p": genai.REQUEST_TOP_P, "top_k": genai.REQUEST_TOP_K, "seed": genai.REQUEST_SEED,
             "frequency_penalty": genai.REQUEST_FREQUENCY_PENALTY,
             "presence_penalty": genai.REQUEST_PRESENCE_PENALTY, "n": genai.REQUEST_CHOICE_COUNT}


def sampling_attributes(sp: common_pb2.SamplingParams) -> dict[str, Any]:
    out: dict[str, Any] = {key: getattr(sp, name) for name, key in _SAMPLING.items()
                           if sp.HasField(name)}
    if sp.stop:
        out[genai.REQUEST_STOP] = list(sp.stop)
    return out


def call_attributes(call: common_pb2.CallSpec, model: str, tenant: str, program_id: str,
                    record_content: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        genai.OPERATION: genai.CHAT if call.messages else genai.TEXT_COMPLETION,
        genai.PROVIDER: genai.PROVIDER_OSTINATO, genai.REQUEST_MODEL: model,
        genai.CONVERSATION_ID: program_id, genai.TENANT: tenant, genai.CALL_ID: call.call_id,
        genai.THREAD_ID: call.thread_id, genai.CALL_PARENTS: list(call.parent_call_ids),
        **sampling_attributes(call.sampling),
    }
    if record_content:
        messages = [{"role": m.role, "parts": _input_parts(m)} for m in call.messages] or [
            {"role": "user", "parts": [{"type": "text", "content": call.prompt}]}]
        attrs[genai.INPUT_MESSAGES] = json.dumps(messages)
    return attrs


def _input_parts(m: common_pb2.Message) -> list[dict[str, Any]]:
    """A message's parts as the GenAI conventions write them: a tool's result a
    `tool_call_response`, an answer's calls `tool_call`s (a walkthrough found both recorded
    as empty text: which tools ran could not be read from a trace)."""
    if m.role == "tool":
        return [{"type": "tool_call_response", "id": m.tool_call_id, "response": m.content}]
    return [*([{"type": "text", "content": m.content}] if m.content or not m.tool_calls else []),
            *_tool_call_parts(m.tool_calls)]


def _tool_call_parts(calls: Iterable[common_pb2.ToolCall]) -> list[dict[str, Any]]:
    return [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": _arguments(c)}
            for c in calls]


def _arguments(call: common_pb2.ToolCall) -> Any:
    """The arguments as an object, or their text when they are not JSON (the history may
    hold a malformed call; NaN is not JSON and would write a span no reader parses)."""
    try:
        return strict_json.loads(call.arguments or "{}")
    except (ValueError, RecursionError):  # (NotJson is a ValueError)
        return call.arguments


def result_attributes(result: common_pb2.CallResult, record_content: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        genai.USAGE_INPUT: result.usage.prompt_tokens,
        genai.USAGE_OUTPUT: result.usage.completion_tokens,
        genai.USAGE_CACHE_READ: result.usage.cached_tokens,
        genai.RESPONSE_FINISH_REASONS: [result.finish_reason] if result.finish_reason else [],
        genai.CACHE_HIT: _CACHE_HIT.get(result.cache_hit, "miss"),
        genai.QUEUE_S: result.timings.queue_s, genai.ENGINE_S: result.timings.engine_s,
        genai.SIMULATED: result.simulated,
    }
    if result.worker_id:
        attrs[genai.WORKER_ID] = result.worker_id
        attrs[genai.PRIORITY] = result.priority
    if record_content:
        thinking = [{"type": "reasoning", "content": result.reasoning_content}] \
            if result.reasoning_content else []
        text = [{"type": "text", "content": result.text}] \
            if result.text or not result.tool_calls else []
        attrs[genai.OUTPUT_MESSAGES] = json.dumps([{
            "role": "assistant",
            "parts": [*thinking, *text, *_tool_call_parts(result.tool_calls)],
            "finish_reason": result.finish_reason}])
    return attrs


class TracedAnswerCache(AnswerCache):
    async def lookup(self, tenant: str, exact_digest: str | None, semantic: SemanticKey | None,
                     threshold: float) -> Hit | None:
        with _tracer.start_as_current_span(genai.SPAN_CACHE_LOOKUP, attributes={
                "ostinato.cache.exact": exact_digest is not None,
                "ostinato.cache.semantic": semantic is not None}) as span:
            hit = await super().lookup(tenant, exact_digest, semantic, threshold)
            span.set_attribute(genai.CACHE_LOOKUP_RESULT, hit.kind if hit is not None else "miss")
            return hit


class TracedGatewayCore(GatewayCore):
    """GatewayCore with program and call spans and metrics (the constructor takes
    GatewayCore's arguments, then the telemetry options)."""

    def __init__(self, *args: Any, record_content: bool = False,
                 program_idle_s: float = 1800.0, metrics: GatewayMetrics | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.programs = ProgramSpans(_tracer, time.monotonic, program_idle_s)
        # where the ends of programs started through other replicas are told (set by the
        # service where Redis is configured)
        self.program_ends: ProgramEnds | None = None
        self._announcing: set[asyncio.Task[None]] = set()
        self.turns = ConversationTurns()
        self.metrics = metrics if metrics is not None else GatewayMetrics(self.config.model)
        self._record_content = record_content

    async def start_program(self, tenant: str, options: common_pb2.ProgramOptions, *,
                            declared: bool = False) -> str:
        program_id, already_open = await self.register_program(tenant, options,
                                                               declared=declared)
        inner = self.program(tenant, program_id)
        # a program open already has its span where it was started (here: the same span, as
        # on a retry; another replica's: its calls here are traced under their callers)
        if not already_open or self.programs.get(inner) is not None:
            # a declared program's span is its RunProgram's: the hop's SERVER span
            kind = trace.SpanKind.SERVER if declared else trace.SpanKind.INTERNAL
            self.programs.start(inner, tenant, options.program_class, otel_context.get_current(),
                                kind)
        return program_id

    async def end_placed(self, tenant: str, inner: str) -> common_pb2.ProgramSummary:
        """GatewayCore's (EndProgram's, and a declared program's end at RunProgram's), and
        the program's span ended (a review found a DAG's left open, by-passed)."""
        summary = await super().end_placed(tenant, inner)
        attributes = {
            genai.TENANT: tenant, genai.PROGRAM_ELAPSED: summary.elapsed_s,
            genai.PROGRAM_CALLS_COMPLETED: summary.calls_completed,
            genai.PROGRAM_CALLS_FAILED: summary.calls_failed,
            genai.PROGRAM_CALLS_CANCELLED: summary.calls_cancelled,
            genai.PROGRAM_CALLS_RUNNING: summary.calls_running,
            genai.USAGE_INPUT: summary.usage.prompt_tokens,
            genai.USAGE_OUTPUT: summary.usage.completion_tokens,
            genai.USAGE_CACHE_READ: summary.usage.cached_tokens}
        # the program's duration is recorded where its span ends, once: not again for an end
        # repeated (its answer lost: the SDK retries it), here or through another replica
        if self.programs.holds(inner):
            self.span_ended(inner, attributes)
        elif self.program_ends is not None:  # its span may be another replica's: told so
            task = asyncio.get_running_loop().create_task(
                self.program_ends.announce(inner, attributes))
            self._announcing.add(task)  # (not awaited: the client's answer waits for none)
            task.add_done_callback(self._announcing.discard)
        return summary

    def span_ended(self, inner: str, attributes: Mapping[str, Any]) -> None:
        """Ends the program's span if it is open here (a program's end announced by another
        replica: tracing/program_ends.py), and records its duration then."""
        if self.programs.holds(inner):
            self.programs.end(inner, "ended", attributes)
            self.metrics.program_ended(str(attributes.get(genai.TENANT, "")),
                                       float(attributes.get(genai.PROGRAM_ELAPSED, 0.0)))

    async def place(self, tenant: str, call: common_pb2.CallSpec, program_id: str = "",
                    *, attribute: bool = False,
                    continues: Continuation | None = None) -> Placement:
        start = time.monotonic()
        try:
            placed = await super().place(tenant, call, program_id, attribute=attribute,
                                         continues=continues)
        except GatewayError as exc:  # refused before it could run (invalid, unknown model ...)
            operation = genai.CHAT if call.messages else genai.TEXT_COMPLETION
            self.metrics.call_failed(tenant, operation, exc.code.name, time.monotonic() - start)
            # a span of its own, so the caller finds the refusal in its trace (tracing
            # review 2026-12-05 F4), under its program's where it named one held here, and
            # the model it asked for (a walkthrough found both left out)
            model = call.model or self.config.model
            inner = self.program(tenant, program_id) if program_id else ""
            attrs = call_attributes(call, model, tenant, inner, False)
            if not inner:
                del attrs[genai.CONVERSATION_ID]
            parent, links = self.programs.call_parent(inner, otel_context.get_current())
            span = _tracer.start_span(genai.span_name(operation, model), context=parent,
                                      kind=_kind(), attributes=attrs, links=links)
            span.set_attribute(genai.ERROR_TYPE, exc.code.name)
            span.set_status(Status(StatusCode.ERROR, f"{exc.code.name}: {exc.message}"))
            span.end()
            raise
        return placed

    async def run(self, tenant: str, placed: Placement, timeout_s: float
                  ) -> AsyncGenerator[CallItem, None]:
        parent, links = self.programs.call_parent(placed.program_id, otel_context.get_current())
        previous = self.turns.previous(placed.program_id) if placed.attributed else None
        if previous is not None:
            links = [*links, trace.Link(previous, {genai.LINK_KIND: genai.PREVIOUS_TURN})]
        attrs = call_attributes(placed.call, self.config.model, tenant, placed.program_id,
                                self._record_content)
        if not placed.whole:  # its answer streamed in deltas
            attrs[genai.REQUEST_STREAM] = True
        new = placed.new_program
        if placed.attributed or (new is not None and new.one_call):  # no program span
            attrs[genai.PROGRAM_KIND] = "conversation" if placed.attributed else "one-call"
        span = _tracer.start_span(genai.span_name(attrs[genai.OPERATION], self.config.model),
                                  context=parent, kind=_kind(placed.node), attributes=attrs,
                                  links=links)
        if placed.attributed:
            self.turns.record(placed.program_id, span.get_span_context())
        ctx = trace.set_span_in_context(span, parent)
        items = super().run(tenant, placed, timeout_s)
        operation, start = attrs[genai.OPERATION], time.monotonic()
        answered = first_chunk = False
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = await items.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                if (isinstance(item, Delta) and (item.text or item.reasoning) and not first_chunk
                        and not placed.whole):
                    first_chunk = True
                    span.set_attribute(genai.RESPONSE_TIME_TO_FIRST_CHUNK,
                                       time.monotonic() - start)
                if isinstance(item, Granted) and item.early:
                    span.set_attribute(genai.EARLY_START, item.early)
                if isinstance(item, common_pb2.CallResult):
                    answered = True
                    span.set_attributes(result_attributes(item, self._record_content))
                    self.metrics.call_answered(tenant, operation, item, time.monotonic() - start)
                yield item
        except GatewayError as exc:
            self.metrics.call_failed(tenant, operation, exc.code.name, time.monotonic() - start)
            span.set_attribute(genai.ERROR_TYPE, exc.code.name)
            span.set_status(Status(StatusCode.ERROR, f"{exc.code.name}: {exc.message}"))
            raise
        except BaseException as exc:  # the caller went away (cancelled, or closed it early)
            if not answered:
                elapsed = time.monotonic() - start
                if cut_by_deadline(elapsed, timeout_s):  # not its caller (the limit: taken as it began)
                    code = grpc.StatusCode.DEADLINE_EXCEEDED
                    self.metrics.call_failed(tenant, operation, code.name, elapsed)
                    span.set_attribute(genai.ERROR_TYPE, code.name)
                    span.set_status(Status(StatusCode.ERROR, f"{code.name}: the call's "
                                           f"{timeout_s:.3g} s ran out"))
                else:
                    self.metrics.call_failed(tenant, operation, CANCELLED, elapsed)
                    genai.mark_cancelled(span, exc)
            raise
        finally:
            span.end()
            await items.aclose()


def _kind(node: bool = False) -> trace.SpanKind:
    """A call span's kind: INTERNAL where this process opened its hop's SERVER span already
    (the HTTP route's, the current span; a declared program's for its `node`s, run within
    its RunProgram), else SERVER: one SERVER span a hop, as OpenTelemetry's conventions have
    it (a walkthrough found the chat span a SERVER span under the route's). A gRPC call into
    a program held here, a declared one's too, is SERVER under the program's span (it was
    INTERNAL, and its hop had no SERVER span: session 69; the diff review's for DAGs)."""
    current = trace.get_current_span().get_span_context()
    return trace.SpanKind.INTERNAL if node or (current.is_valid and not current.is_remote) \
        else trace.SpanKind.SERVER
