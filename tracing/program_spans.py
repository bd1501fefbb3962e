"""The open program spans of one gateway: a program's span lives from its start to its
end, across many RPCs, so the gateway keeps it here until then.

A program idle for `idle_s` (the planner expires it too) or open when the gateway stops
is ended with `ostinato.program.end` saying so; one ended through another replica, when
that replica says so (tracing/program_ends.py). Calls of a program this gateway did not
start (another replica, or before a restart) still trace: under the caller's context.

Only programs a client starts (StartProgram, RunProgram, `POST /v1/programs`) have a span.
A conversation of the OpenAI API (a program the gateway finds from the messages) has no
end a client says, so a span of it would stay open until it expired (30 minutes by
default): every request's trace would lack its root until then, and a gateway that died
would never export it (tracing review 2026-12-05 F2). Its calls are children of each
request's own context instead, named by `gen_ai.conversation.id`, each linked to the
call span of the turn before it (`ConversationTurns`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from tracing import genai


class ProgramSpans:
    def __init__(self, tracer: trace.Tracer, clock: Callable[[], float], idle_s: float = 1800.0,
                 max_open: int = 100_000) -> None:
        self._tracer = tracer
        self._clock = clock
        self._idle_s = idle_s
        self._max_open = max_open
        self._open: OrderedDict[str, tuple[trace.Span, float]] = OrderedDict()  # by last use

    def __len__(self) -> int:
        return len(self._open)

    def start(self, program_id: str, tenant: str, program_class: str = "",
              parent: otel_context.Context | None = None,
              kind: trace.SpanKind = trace.SpanKind.INTERNAL) -> trace.Span:
        """The program's span (already open: the same one, as on a retried registration);
        SERVER `kind` where it is its RPC's span too (a declared program's, RunProgram's)."""
        self.expire()
        known = self.get(program_id)
        if known is not None:
            return known
        attrs: dict[str, Any] = {
            genai.OPERATION: genai.INVOKE_WORKFLOW, genai.PROVIDER: genai.PROVIDER_OSTINATO,
            genai.CONVERSATION_ID: program_id, genai.PROGRAM_ID: program_id, genai.TENANT: tenant,
        }
        if program_class:
            attrs[genai.PROGRAM_CLASS] = program_class
            attrs[genai.WORKFLOW_NAME] = program_class
        span = self._tracer.start_span(
            genai.span_name(genai.INVOKE_WORKFLOW, program_class or "program"),
            context=parent, kind=kind, attributes=attrs)
        self._open[program_id] = (span, self._clock())
        while len(self._open) > self._max_open:
            _, (oldest, _) = self._open.popitem(last=False)
            oldest.set_attribute(genai.PROGRAM_END, "evicted")
            oldest.end()
        return span

    def holds(self, program_id: str) -> bool:
        """Whether the program's span is open here (its last use unchanged)."""
        return program_id in self._open

    def get(self, program_id: str) -> trace.Span | None:
        entry = self._open.get(program_id)
        if entry is None:
            return None
        self._open[program_id] = (entry[0], self._clock())
        self._open.move_to_end(program_id)
        return entry[0]

    def call_parent(self, program_id: str,
                    current: otel_context.Context) -> tuple[otel_context.Context, list[trace.Link]]:
        """The parent of a call of `program_id`: the program's span, so that a program's
        calls are its children whoever sends them; the caller's own span is linked when it
        is not the program's parent (a client with a span per step). For a program not held
        here: the caller's context."""
        program = self.get(program_id)
        if program is None:
            return current, []
        caller = trace.get_current_span(current).get_span_context()
        parent = getattr(program, "parent", None)  # an SDK span knows its parent's context
        linked = caller.is_valid and (parent is None or caller.span_id != parent.span_id)
        return trace.set_span_in_context(program, current), [trace.Link(caller)] if linked else []

    def end(self, program_id: str, how: str = "ended",
            attributes: Mapping[str, Any] | None = None) -> None:
        entry = self._open.pop(program_id, None)
        if entry is None:
            return
        span = entry[0]
        span.set_attributes({genai.PROGRAM_END: how, **(attributes or {})})
        span.end()

    def expire(self) -> None:
        """Ends the spans of programs idle for the idle time (as the planner expires them);
        each start does it too."""
        now = self._clock()
        while self._open:
            program_id, (_, last) = next(iter(self._open.items()))
            if now - last < self._idle_s:
                break
            self.end(program_id, "expired")

    def end_all(self, how: str = "shutdown") -> None:
        for program_id in list(self._open):
            self.end(program_id, how)


class ConversationTurns:
    """The span of each conversation's latest call, for the next turn's link; the least
    recently used are forgotten beyond `max_held`."""

    def __init__(self, max_held: int = 100_000) -> None:
        self._last: OrderedDict[str, trace.SpanContext] = OrderedDict()
        self._max_held = max_held

    def previous(self, program_id: str) -> trace.SpanContext | None:
        return self._last.get(program_id)

    def record(self, program_id: str, span: trace.SpanContext) -> None:
        self._last[program_id] = span
        self._last.move_to_end(program_id)
        while len(self._last) > self._max_held:
            self._last.popitem(last=False)
