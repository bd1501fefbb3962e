"""Which spans are a program's, for `ostinato trace show` and `ostinato trace list`: its
program span, one span per call that ran, and apart from those the requests the gateway
refused.

Every span naming the program id (gen_ai.conversation.id) is a candidate, but not all of
them are the program's:

- A refused request: a call span the gateway ended with an error whose code (error.type,
  else the status message's `CODE:` prefix) refuses a request before it runs (REFUSALS:
  ALREADY_EXISTS for a call id sent again, NOT_FOUND for a program that ended or never
  existed, such as another tenant's id, INVALID_ARGUMENT, RESOURCE_EXHAUSTED ...), and with
  nothing under it that shows it ran (an admit span the planner did not fail, a worker or
  engine span). It never joined the program. It is not one of its calls, it is never on
  the critical path, and it never replaces the call that ran under the same id. The
  program's refused requests are kept apart (Members.refused). An id that only refused
  requests name is not a program.
- With a program span, the program's requests are those in that span's trace (the
  program's own trace) of its tenant. A call that ran in another trace counts too when it
  started after the program did: a call sent through another gateway, or after a gateway
  restart, is traced under its caller's context. A refused request in another trace is
  not the program's. If the id was used again (a program ended, then started anew), the
  program span that ended last is the program.
- Without one (the program is still open, or another gateway holds its span), there is
  no trace to go by: every call that ran naming the id is the program's, and every
  refused request naming it is kept apart.

A call id that ran more than once (a failed call run again) shows its last run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tracing import genai
from tracing.span_file import SpanRecord

# gRPC codes that refuse a request before it runs (gateway/core.py, planner/translate.py,
# gateway/quota_meter.py); a call that ran and then failed ends with others (UNAVAILABLE,
# INTERNAL, DEADLINE_EXCEEDED, cancelled ...), or shows a span under it that ran.
REFUSALS = frozenset({"ALREADY_EXISTS", "NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION",
                      "RESOURCE_EXHAUSTED", "OUT_OF_RANGE", "PERMISSION_DENIED",
                      "UNAUTHENTICATED"})
_CALL_OPERATIONS = (genai.CHAT, genai.TEXT_COMPLETION)

Key = tuple[str, str]  # (trace id, span id)
Children = dict[Key, list[SpanRecord]]


def key(span: SpanRecord) -> Key:
    return (span.trace_id, span.span_id)


def children_of(spans: Iterable[SpanRecord]) -> Children:
    out: Children = defaultdict(list)
    for s in spans:
        if s.parent_id:
            out[(s.trace_id, s.parent_id)].append(s)
    return out


def descendants(root: SpanRecord, children: Children) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    stack = [root]
    seen = {key(root)}
    while stack:
        for child in children.get(key(stack.pop()), []):
            if key(child) not in seen:
                seen.add(key(child))
                out.append(child)
                stack.append(child)
    return out


def last_ended(spans: Iterable[SpanRecord]) -> SpanRecord | None:
    return max(spans, key=lambda s: (s.end_ns, s.start_ns), default=None)


def is_engine_request(s: SpanRecord) -> bool:
    op = s.attributes.get(genai.OPERATION, s.name.split(" ", 1)[0])
    return s.kind == "CLIENT" and op == genai.TEXT_COMPLETION


def is_program_span(s: SpanRecord) -> bool:
    return s.attributes.get(genai.OPERATION) == genai.INVOKE_WORKFLOW


def _ran(s: SpanRecord) -> bool:
    """Whether a span under a call span shows that the call ran."""
    if s.name == genai.SPAN_PLANNER_ADMIT:
        return s.status != "ERROR"
    return s.name == genai.SPAN_WORKER_GENERATE or is_engine_request(s)


def refusal(call: SpanRecord, below: Iterable[SpanRecord]) -> str:
    """The gRPC code that refused the request of call span `call` (`below`: the spans under
    it) before it ran; "" for a call that ran."""
    if call.status != "ERROR":
        return ""
    code = str(call.attributes.get(genai.ERROR_TYPE) or call.status_message.partition(":")[0])
    if code.strip() not in REFUSALS or any(_ran(s) for s in below):
        return ""
    return code.strip()


@dataclass(frozen=True)
class Request:
    """One request naming a call: the outermost span naming it and the spans under it."""

    span: SpanRecord
    below: tuple[SpanRecord, ...]
    refused: str  # the code that refused it; "" for a call that ran

    @property
    def call_id(self) -> str:
        return str(self.span.attributes[genai.CALL_ID])


def requests(spans: Sequence[SpanRecord], children: Children) -> list[Request]:
    """One per call span: the outermost span naming a call (an engine request span under it
    may carry the same attributes)."""
    candidates = [s for s in spans if s.attributes.get(genai.CALL_ID)
                  and s.attributes.get(genai.OPERATION) in _CALL_OPERATIONS]
    ids = {key(s) for s in candidates}
    out: list[Request] = []
    for s in candidates:
        if (s.trace_id, s.parent_id) in ids:
            continue
        below = tuple(descendants(s, children))
        out.append(Request(s, below, refusal(s, below)))
    return out


@dataclass(frozen=True)
class Members:
    program: SpanRecord | None  # the program span, or None
    calls: tuple[Request, ...]  # one per call id that ran: its last run
    refused: tuple[Request, ...]  # refused requests of its trace (all, without one), by start
    spans: tuple[SpanRecord, ...]  # the program span, its calls and what is under them

    @property
    def tenant(self) -> str:
        found = (s.attributes.get(genai.TENANT) for s in (self.program, *(c.span for c in self.calls))
                 if s is not None)
        return str(next((t for t in found if t), ""))


def _same_tenant(a: SpanRecord, b: SpanRecord) -> bool:
    ta, tb = a.attributes.get(genai.TENANT), b.attributes.get(genai.TENANT)
    return not ta or not tb or ta == tb


def _joined(r: Request, program: SpanRecord) -> bool:
    """Whether request `r` is of the program of `program` (its span), by trace and tenant."""
    if not _same_tenant(r.span, program):
        return False
    if r.span.trace_id == program.trace_id:
        return True
    return not r.refused and r.span.start_ns >= program.start_ns


def program_members(named: Sequence[SpanRecord], children: Children) -> Members:
    """The program's spans among `named`, the spans naming one program id (`children`:
    children_of every span, for the spans under the calls)."""
    program = last_ended(s for s in named if is_program_span(s))
    found = requests(named, children)
    refused_keys = _spans_of(r for r in found if r.refused)
    unrefused = [s for s in named if key(s) not in refused_keys]
    if program is not None:
        found = [r for r in found if _joined(r, program)]
    last: dict[str, Request] = {}
    for r in found:
        known = last.get(r.call_id)
        if not r.refused and (known is None or (r.span.end_ns, r.span.start_ns) >
                              (known.span.end_ns, known.span.start_ns)):
            last[r.call_id] = r
    calls = tuple(last.values())
    spans = [*(s for c in calls for s in (c.span, *c.below))]
    if program is not None:
        spans.append(program)
    spans = spans or unrefused  # spans naming the program, none of them a call's
    refused = sorted((r for r in found if r.refused), key=lambda r: (r.span.start_ns, r.call_id))
    return Members(program, calls, tuple(refused), tuple(spans))


def _spans_of(found: Iterable[Request]) -> set[Key]:
    return {key(s) for r in found for s in (r.span, *r.below)}


def program_ids(spans: Sequence[SpanRecord], children: Children | None = None) -> set[str]:
    """The program ids the spans name, but for those that only refused requests name."""
    found = requests(spans, children if children is not None else children_of(spans))
    refused = _spans_of(r for r in found if r.refused)
    return {str(s.attributes[genai.CONVERSATION_ID]) for s in spans
            if s.attributes.get(genai.CONVERSATION_ID) and key(s) not in refused}
