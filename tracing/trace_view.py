"""The timeline of one program, rebuilt from its spans (`ostinato trace show`).

A program's spans share its id in `gen_ai.conversation.id`: the program span (absent while the
program is open, or when another gateway started it) and one span per call. Which of the
spans naming the id are the program's is tracing/trace_members.py's: those of the program's
own trace and tenant, and never a request the gateway refused before it ran (a call id sent
again, a call to a program that ended or to another tenant's id ...). Refused requests are
not calls: they are listed apart in ProgramTimeline.refused (those of the program's trace;
all that name the id without a program span), which the terminal and the page do not draw.
A call id that ran more than once shows its last run. Under each call span the planner's admit span
gives the queue wait and the engine request span the prefill (up to its first-token event)
and decode. Times are seconds from the program's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from ostinato.program_ids import GENERATION
from tracing import genai
from tracing.span_file import SpanRecord
from tracing.trace_members import (
    Children,
    Members,
    children_of,
    is_engine_request,
    last_ended,
    program_ids,
    program_members,
)

QUEUE = "queue"
PREFILL = "prefill"
DECODE = "decode"
PHASE_KINDS = (QUEUE, PREFILL, DECODE)
CACHED = ("exact", "semantic")  # ostinato.cache.hit values of a call answered by the gateway


class TraceViewError(Exception):
    """The program asked for is not in the spans, or the id is ambiguous."""


class Phase(NamedTuple):
    kind: str  # queue | prefill | decode
    start_s: float
    end_s: float


@dataclass(frozen=True)
class CallTimeline:
    call_id: str
    name: str  # the call span's name, e.g. "chat llama-3.1-8b"
    thread: str
    parents: tuple[str, ...]
    worker: str  # "" when no worker served it (cached, or failed before dispatch)
    cache_hit: str  # exact | semantic | miss | "" (not recorded)
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    finish_reason: str
    status: str  # UNSET | OK | ERROR
    status_message: str
    start_s: float
    end_s: float
    phases: tuple[Phase, ...]
    on_critical_path: bool = False
    details: dict[str, Any] = field(default_factory=dict)  # more attributes, for hover text
    error_type: str = ""  # the call span's error.type ("cancelled", a gRPC code ...)

    @property
    def cached(self) -> bool:
        return self.cache_hit in CACHED

    @property
    def cancelled(self) -> bool:
        return self.status == "ERROR" and genai.cancelled(self.error_type)

    @property
    def failed(self) -> bool:
        """Ended in error, and not by a cancel (counted apart: `cancelled`)."""
        return self.status == "ERROR" and not self.cancelled

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class RefusedRequest:
    """A request naming a call of the program that the gateway refused before it ran."""

    call_id: str
    code: str  # the gRPC status code's name, e.g. ALREADY_EXISTS
    message: str  # the call span's status message
    start_s: float


@dataclass(frozen=True)
class ProgramTimeline:
    program_id: str
    tenant: str
    program_class: str
    end_reason: str  # ostinato.program.end; "" without the program span
    has_program_span: bool
    start_unix_ns: int  # the time axis' zero
    duration_s: float
    calls: tuple[CallTimeline, ...]  # ordered by start
    critical_path: tuple[str, ...]  # call ids, first to last
    refused: tuple[RefusedRequest, ...] = ()  # not calls (trace_members.py), by start

    @property
    def cached_calls(self) -> int:
        return sum(1 for c in self.calls if c.cached)

    @property
    def failed_calls(self) -> int:
        return sum(1 for c in self.calls if c.failed)

    @property
    def cancelled_calls(self) -> int:
        return sum(1 for c in self.calls if c.cancelled)

    @property
    def critical_path_s(self) -> float:
        """Time spent inside the calls of the critical path."""
        return sum(c.duration_s for c in self.calls if c.on_critical_path)


def _without_generation(program_id: str) -> str:
    """`tenant#generation/id` as `tenant/id` (ostinato/program_ids.py)."""
    tenant, sep, rest = program_id.partition("/")
    return f"{tenant.partition(GENERATION)[0]}{sep}{rest}"


def matching_ids(ids: set[str], wanted: str) -> list[str]:
    """The ids that `wanted` is a prefix of: as the spans carry them (`tenant#generation/id`),
    without the tenant's generation (`tenant/id`), or the client's own id."""
    return sorted(p for p in ids if p.startswith(wanted) or p.partition("/")[2].startswith(wanted)
                  or _without_generation(p).startswith(wanted))


def resolve_program_id(spans: Sequence[SpanRecord], wanted: str,
                       children: Children | None = None) -> str:
    """The program id `wanted` names: itself, or the one id it is a prefix of. Spans carry
    the mesh's id, `tenant#generation/id` (ostinato/program_ids.py); `tenant/id` and the id
    a client knows (or their prefixes) name it too, unless two programs match. An id that
    only refused requests name is no program."""
    known = program_ids(spans, children)
    if wanted in known:
        return wanted
    matches = matching_ids(known, wanted)
    if not matches:
        named = {str(s.attributes[genai.CONVERSATION_ID]) for s in spans
                 if s.attributes.get(genai.CONVERSATION_ID)}
        refused = ": only requests the gateway refused name it" if matching_ids(named, wanted) else ""
        raise TraceViewError(f"no program {wanted!r} in the trace file{refused} ({len(known)} "
                             "programs; `ostinato trace list` on the same file names them)")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise TraceViewError(f"program id {wanted!r} is ambiguous: {shown}")
    return matches[0]


def _parents(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _first(value: Any) -> str:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _first_token_ns(engine: SpanRecord) -> int | None:
    for event in engine.events:
        if event.name == genai.FIRST_TOKEN_EVENT:
            return event.time_ns
    ttft = engine.attributes.get(genai.TTFT_S)
    if isinstance(ttft, int | float) and ttft >= 0:
        return min(engine.start_ns + int(ttft * 1e9), engine.end_ns)
    return None


def _call_timeline(call: SpanRecord, below: list[SpanRecord], zero_ns: int) -> CallTimeline:
    def rel(ns: int) -> float:
        return (ns - zero_ns) / 1e9

    a = call.attributes
    admit = last_ended(s for s in below if s.name == genai.SPAN_PLANNER_ADMIT)
    generate = last_ended(s for s in below if s.name == genai.SPAN_WORKER_GENERATE)
    requests = [s for s in below if is_engine_request(s)]
    if generate is not None:  # prefer the request of the worker span that ended last
        requests = [s for s in requests if (s.trace_id, s.parent_id) == (generate.trace_id,
                                                                          generate.span_id)] or requests
    engine = last_ended(requests)
    lookup = last_ended(s for s in below if s.name == genai.SPAN_CACHE_LOOKUP)
    e = engine.attributes if engine is not None else {}

    phases: list[Phase] = []
    if admit is not None:
        phases.append(Phase(QUEUE, rel(admit.start_ns), rel(admit.end_ns)))
    if engine is not None:
        first = _first_token_ns(engine)
        if first is not None:
            phases.append(Phase(PREFILL, rel(engine.start_ns), rel(first)))
            phases.append(Phase(DECODE, rel(first), rel(engine.end_ns)))
        else:
            phases.append(Phase(DECODE, rel(engine.start_ns), rel(engine.end_ns)))

    def usage(key: str) -> int:
        value = a.get(key, e.get(key, 0))
        return int(value) if isinstance(value, int | float) else 0

    worker = next((str(x.attributes[genai.WORKER_ID]) for x in (call, admit, generate)
                   if x is not None and x.attributes.get(genai.WORKER_ID)), "")
    details: dict[str, Any] = {"model": a.get(genai.REQUEST_MODEL, "")}
    if genai.PRIORITY in a:
        details["priority"] = a[genai.PRIORITY]
    if lookup is not None:
        details["cache lookup"] = lookup.attributes.get(genai.CACHE_LOOKUP_RESULT, "")
    if admit is not None:
        for key, label in ((genai.ROUTE_POLICY, "route policy"), (genai.ROUTE_MATCHED_BLOCKS,
                           "matched blocks"), (genai.PARKED_S, "parked s"), (genai.QUEUE_S, "queue s")):
            if key in admit.attributes:
                details[label] = admit.attributes[key]
    if genai.TTFT_S in e:
        details["ttft s"] = e[genai.TTFT_S]
    if e.get(genai.SIMULATED):
        details["simulated"] = True
    return CallTimeline(
        call_id=str(a[genai.CALL_ID]), name=call.name, thread=str(a.get(genai.THREAD_ID, "")),
        parents=_parents(a.get(genai.CALL_PARENTS)), worker=worker,
        cache_hit=str(a.get(genai.CACHE_HIT, "")), tokens_in=usage(genai.USAGE_INPUT),
        tokens_out=usage(genai.USAGE_OUTPUT), tokens_cached=usage(genai.USAGE_CACHE_READ),
        finish_reason=_first(a.get(genai.RESPONSE_FINISH_REASONS, e.get(genai.RESPONSE_FINISH_REASONS))),
        status=call.status, status_message=call.status_message,
        start_s=rel(call.start_ns), end_s=rel(call.end_ns), phases=tuple(phases), details=details,
        error_type=str(a.get(genai.ERROR_TYPE, "")),
    )


def _name_suffix(span: SpanRecord | None) -> str:
    """`invoke_workflow <class>` -> the class."""
    return span.name.partition(" ")[2] if span is not None else ""


def critical_path(calls: Sequence[CallTimeline]) -> tuple[str, ...]:
    """From the call that ends last, step to the parent that ended last (the one that gated
    it) until a call has no recorded parent."""
    by_id = {c.call_id: c for c in calls}
    node = max(calls, key=lambda c: (c.end_s, c.start_s), default=None)
    path: list[str] = []
    while node is not None and node.call_id not in path:
        path.append(node.call_id)
        parents = [by_id[p] for p in node.parents if p in by_id]
        node = max(parents, key=lambda c: (c.end_s, c.start_s), default=None)
    return tuple(reversed(path))


def program_labels(members: Members) -> tuple[str, str, str]:
    """(tenant, program class, end reason) from the program span, the tenant from a call's
    span without one. A program that has no program span by design (an OpenAI-API
    conversation, a one-call program) is named so, from its calls' spans, in place of an
    end reason ("" otherwise: the program span is not in the file)."""
    program = members.program
    p = program.attributes if program is not None else {}
    kinds = (c.span.attributes.get(genai.PROGRAM_KIND) for c in members.calls)
    return (members.tenant, str(p.get(genai.PROGRAM_CLASS, "")) or _name_suffix(program),
            str(p.get(genai.PROGRAM_END, "") if program is not None
                else next((k for k in kinds if k), "")))


def _refused(members: Members, zero_ns: int) -> tuple[RefusedRequest, ...]:
    return tuple(RefusedRequest(r.call_id, r.refused, r.span.status_message,
                                (r.span.start_ns - zero_ns) / 1e9) for r in members.refused)


def build_timeline(spans: Sequence[SpanRecord], program_id: str) -> ProgramTimeline:
    """The timeline of `program_id` (or of the one program whose id starts with it)."""
    children = children_of(spans)
    pid = resolve_program_id(spans, program_id, children)
    members = program_members([s for s in spans if s.attributes.get(genai.CONVERSATION_ID) == pid],
                              children)
    program = members.program
    zero_ns = program.start_ns if program is not None else min(s.start_ns for s in members.spans)
    end_ns = max(s.end_ns for s in members.spans)
    timelines = sorted((_call_timeline(c.span, list(c.below), zero_ns) for c in members.calls),
                       key=lambda c: (c.start_s, c.call_id))
    path = critical_path(timelines)
    on_path = set(path)
    timelines = [replace(c, on_critical_path=c.call_id in on_path) for c in timelines]
    tenant, program_class, end_reason = program_labels(members)
    return ProgramTimeline(
        program_id=pid, tenant=tenant, program_class=program_class, end_reason=end_reason,
        has_program_span=program is not None, start_unix_ns=zero_ns,
        duration_s=(end_ns - zero_ns) / 1e9, calls=tuple(timelines), critical_path=path,
        refused=_refused(members, zero_ns),
    )
