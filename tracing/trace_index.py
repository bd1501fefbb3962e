"""The programs in a trace file, one row each (`ostinato trace list`): newest first, with
their tenant, class, start, duration and calls, so that `ostinato trace show` has an id to
take. One pass over the spans; a program's calls are counted as `trace show` counts them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tracing import genai
from tracing.span_file import SpanRecord
from tracing.trace_view import CACHED, call_spans, program_labels, program_span


@dataclass(frozen=True)
class ProgramEntry:
    program_id: str  # as the spans carry it: tenant/id (gateway/program_ids.py)
    tenant: str
    program_class: str
    end_reason: str  # ostinato.program.end; "" without the program span (still open)
    start_unix_ns: int
    duration_s: float
    calls: int
    failed_calls: int
    cached_calls: int


def _entry(program_id: str, spans: list[SpanRecord]) -> ProgramEntry:
    program = program_span(spans)
    calls = call_spans(spans)
    tenant, program_class, end_reason = program_labels(program, calls)
    start = program.start_ns if program is not None else min(s.start_ns for s in spans)
    return ProgramEntry(
        program_id=program_id, tenant=tenant, program_class=program_class,
        end_reason=end_reason, start_unix_ns=start,
        duration_s=(max(s.end_ns for s in spans) - start) / 1e9, calls=len(calls),
        failed_calls=sum(1 for c in calls if c.status == "ERROR"),
        cached_calls=sum(1 for c in calls if c.attributes.get(genai.CACHE_HIT) in CACHED))


def program_index(spans: Iterable[SpanRecord], *, tenant: str | None = None) -> list[ProgramEntry]:
    """Every program the spans name (gen_ai.conversation.id), newest start first; only
    `tenant`'s when given."""
    by_program: dict[str, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        pid = s.attributes.get(genai.CONVERSATION_ID)
        if pid:
            by_program[str(pid)].append(s)
    entries = [_entry(pid, group) for pid, group in by_program.items()]
    if tenant is not None:
        entries = [e for e in entries if e.tenant == tenant]
    return sorted(entries, key=lambda e: (-e.start_unix_ns, e.program_id))
