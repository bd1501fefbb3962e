"""The programs in a trace file, one row each (`ostinato trace list`): newest first, with
their tenant, class, start, duration and calls, so that `ostinato trace show` has an id to
take. A program's calls are counted as `trace show` counts them (tracing/trace_members.py):
the calls that ran, each once, in the program's own trace and tenant, never a request the
gateway refused; an id that only refused requests name is no program."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tracing import genai
from tracing.span_file import SpanRecord
from tracing.trace_members import Children, children_of, program_ids, program_members
from tracing.trace_view import CACHED, program_labels


@dataclass(frozen=True)
class ProgramEntry:
    program_id: str  # as the spans carry it: tenant/id (ostinato/program_ids.py)
    tenant: str
    program_class: str
    end_reason: str  # ostinato.program.end; "" without the program span (still open)
    start_unix_ns: int
    duration_s: float
    calls: int
    failed_calls: int  # ended in error, cancels apart
    cached_calls: int
    cancelled_calls: int = 0


def program_entry(program_id: str, named: list[SpanRecord], children: Children) -> ProgramEntry:
    members = program_members(named, children)
    calls = [c.span for c in members.calls]
    tenant, program_class, end_reason = program_labels(members)
    program, spans = members.program, members.spans
    start = program.start_ns if program is not None else min(s.start_ns for s in spans)
    return ProgramEntry(
        program_id=program_id, tenant=tenant, program_class=program_class,
        end_reason=end_reason, start_unix_ns=start,
        duration_s=(max(s.end_ns for s in spans) - start) / 1e9, calls=len(calls),
        failed_calls=sum(1 for c in calls if c.status == "ERROR"
                         and not genai.cancelled(c.attributes.get(genai.ERROR_TYPE, ""))),
        cached_calls=sum(1 for c in calls if c.attributes.get(genai.CACHE_HIT) in CACHED),
        cancelled_calls=sum(1 for c in calls if c.status == "ERROR"
                            and genai.cancelled(c.attributes.get(genai.ERROR_TYPE, ""))))


def program_index(spans: Sequence[SpanRecord], *, tenant: str | None = None) -> list[ProgramEntry]:
    """Every program the spans name (gen_ai.conversation.id), newest start first; only
    `tenant`'s when given."""
    children = children_of(spans)
    known = program_ids(spans, children)
    by_program: dict[str, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        pid = s.attributes.get(genai.CONVERSATION_ID)
        if pid and str(pid) in known:
            by_program[str(pid)].append(s)
    entries = [program_entry(pid, group, children) for pid, group in by_program.items()]
    if tenant is not None:
        entries = [e for e in entries if e.tenant == tenant]
    return sorted(entries, key=lambda e: (-e.start_unix_ns, e.program_id))
