"""`ostinato trace list` and `ostinato trace show` over a span file of any size: read as a
stream, a line at a time, never all of its spans at once.

The file exporter only appends, ~4.5 KB a call; read whole, every span a SpanRecord before
anything was picked, a 400 MB file took 811 MB and 14.5 s (tracing review 2026-12-05 F8).
Both commands read the file twice (span_file.SpanLines: the second read ends where the
first did):

1. `scan`: each trace's last line, and the traces that name each program id
   (gen_ai.conversation.id). Ids only, no spans.
2. `program_rows` (`list`): a trace's spans are kept until its last line; then the spans
   naming each program id, with the spans under them, are set aside for that program and
   the others dropped; at the last line of a program's last trace its row is made and its
   spans dropped. What is held is the traces and programs still open at the line being
   read, and a row per program. `program_timeline` (`show`): the spans of the traces that
   name an id the one asked for matches, no others.

The rows and the timeline are those of trace_index.program_index and
trace_view.build_timeline over every span of the file: a program's spans and those under
them are all in the traces that name its id (a span's children are of its trace), and
whether a request was refused (trace_members.py) is of its own trace alone. A file that
changed between the reads (cut short and written again) is read once more, then whole.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from tracing import genai
from tracing.otlp_json import any_value
from tracing.span_file import SpanLines, SpanRecord, printable
from tracing.trace_index import ProgramEntry, program_entry
from tracing.trace_members import children_of, key, program_ids, requests
from tracing.trace_view import ProgramTimeline, TraceViewError, build_timeline, matching_ids

Seq = int  # a span's place in the file: the spans of a program are put back in that order
_END = 1 << 62  # the last line of what is held to the end of the file


@dataclass
class Plan:
    """What the first read found: where each trace naming a program ends, and which traces
    name each program id."""

    trace_last: dict[str, int] = field(default_factory=dict)  # trace id -> its last line's number
    program_traces: dict[str, set[str]] = field(default_factory=dict)  # program id -> trace ids


class _Changed(Exception):
    """The file is not what the first read found (rewritten between the reads)."""


def _program_of(span: SpanRecord) -> str:
    """The program id a span names; "" for none (as trace_index.program_index reads it)."""
    pid = span.attributes.get(genai.CONVERSATION_ID)
    return str(pid) if pid else ""


def _span_ids(request: Any) -> Iterator[tuple[str, str]]:
    """(trace id, program id or "") of each span of a line, read as span_file.spans_of_request
    reads them, but nothing else: a line it takes never fails here (a line it refuses may
    give some ids first, which only holds a trace or a program longer)."""
    for rs in request.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                pid: Any = None
                for kv in s.get("attributes", []):
                    if kv["key"] == genai.CONVERSATION_ID:  # the last one, as a dict keeps
                        pid = printable(any_value(kv.get("value", {})))
                yield s["traceId"], str(pid) if pid else ""


def scan(lines: SpanLines) -> Plan:
    """The first read: the last line of each trace that names a program, and the traces
    naming each program id."""
    plan = Plan()
    last: dict[str, int] = {}
    for number, line in enumerate(lines.lines()):
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                continue
            for trace_id, pid in _span_ids(request):
                last[trace_id] = number
                if pid:
                    plan.program_traces.setdefault(pid, set()).add(trace_id)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # (request_spans skips it too; the ids read before it count)
    named = set().union(*plan.program_traces.values())
    plan.trace_last = {t: n for t, n in last.items() if t in named}
    return plan


def _set_aside(trace: list[tuple[Seq, SpanRecord]], programs: dict[str, dict[Seq, SpanRecord]],
               known: set[str]) -> set[str]:
    """A trace that ended: the spans naming each program id, and every span under them, added
    to that program's (by their place in the file); an id that a span no refused request
    covers names is `known` (as trace_members.program_ids finds them). The ids it names."""
    spans = [s for _, s in trace]
    children = children_of(spans)
    refused = {key(x) for r in requests(spans, children) if r.refused for x in (r.span, *r.below)}
    seq_of = {id(s): seq for seq, s in trace}
    named: dict[str, list[SpanRecord]] = {}
    for s in spans:
        pid = _program_of(s)
        if pid:
            named.setdefault(pid, []).append(s)
    for pid, own in named.items():
        if any(key(s) not in refused for s in own):
            known.add(pid)
        kept = programs.setdefault(pid, {})
        kept.update((seq_of[id(s)], s) for s in own)
        below = list(own)
        while below:
            for child in children.get(key(below.pop()), ()):
                seq = seq_of[id(child)]
                if seq not in kept:
                    kept[seq] = child
                    below.append(child)
    return set(named)


def _rows(lines: SpanLines, plan: Plan | None) -> Iterator[ProgramEntry]:
    """The second read: each program's row once the last of its traces ended (no plan: every
    span kept to the end of the file). _Changed where the file is not as planned."""
    program_last = {} if plan is None else {
        pid: max(plan.trace_last[t] for t in traces) for pid, traces in plan.program_traces.items()}
    traces: dict[str, list[tuple[Seq, SpanRecord]]] = {}  # those held, their spans so far
    trace_ends: list[tuple[int, str]] = []  # (last line, trace id) of those held: a heap
    programs: dict[str, dict[Seq, SpanRecord]] = {}  # those held, their spans so far
    program_ends: list[tuple[int, str]] = []  # (last line, program id) of those held: a heap
    known: set[str] = set()
    pushed: set[str] = set()  # the programs in program_ends
    done: set[str] = set()  # the programs whose row was made
    seqs = count()

    def hold(s: SpanRecord, number: int) -> list[tuple[Seq, SpanRecord]] | None:
        """Where span `s` of line `number` is kept; None: nowhere (no program needs it)."""
        if plan is None:
            last = _END
        else:
            pid = _program_of(s)
            if pid and s.trace_id not in plan.program_traces.get(pid, ()):
                raise _Changed
            if s.trace_id not in plan.trace_last:
                return None  # a trace naming no program
            last = plan.trace_last[s.trace_id]
            if last < number:
                raise _Changed  # (a trace that ended, set aside already)
        if s.trace_id not in traces:
            traces[s.trace_id] = []
            heapq.heappush(trace_ends, (last, s.trace_id))
        return traces[s.trace_id]

    def set_aside(trace_id: str) -> None:
        for pid in _set_aside(traces.pop(trace_id), programs, known):
            if pid in done:
                raise _Changed
            if pid not in pushed:
                pushed.add(pid)
                heapq.heappush(program_ends, (program_last.get(pid, _END), pid))

    def row(pid: str) -> Iterator[ProgramEntry]:
        kept = programs.pop(pid)
        pushed.discard(pid)
        done.add(pid)
        if pid in known:
            spans = [kept[seq] for seq in sorted(kept)]
            yield program_entry(pid, [s for s in spans if _program_of(s) == pid], children_of(spans))

    for number, spans in lines.requests():
        for s in spans:
            seq = next(seqs)
            held = hold(s, number)
            if held is not None:
                held.append((seq, s))
        while trace_ends and trace_ends[0][0] <= number:
            set_aside(heapq.heappop(trace_ends)[1])
        while program_ends and program_ends[0][0] <= number:
            yield from row(heapq.heappop(program_ends)[1])
    for trace_id in list(traces):  # no plan, or their last lines held no spans this time
        set_aside(trace_id)
    for pid in list(programs):
        yield from row(pid)


def program_rows(lines: SpanLines, plan: Plan | None = None) -> list[ProgramEntry]:
    """trace_index.program_index of every span of `lines`, read as a stream (`plan`: the
    first read's, when made already)."""
    try:
        rows = list(_rows(lines, plan if plan is not None else scan(lines)))
    except _Changed:
        rows = list(_rows(lines, None))
    return sorted(rows, key=lambda e: (-e.start_unix_ns, e.program_id))


def _spans_of(lines: SpanLines, traces: set[str], wanted: str | None) -> list[SpanRecord]:
    """The spans of `traces`; _Changed where another trace names an id that `wanted`
    matches (None: every span)."""
    out: list[SpanRecord] = []
    for _, spans in lines.requests():
        for s in spans:
            if wanted is None or s.trace_id in traces:
                out.append(s)
            elif s.attributes.get(genai.CONVERSATION_ID) and matching_ids({_program_of(s)}, wanted):
                raise _Changed
    return out


def program_timeline(lines: SpanLines, wanted: str) -> ProgramTimeline:
    """trace_view.build_timeline of every span of `lines` for `wanted` (a program id, or its
    prefix), from the spans of the traces naming the ids it matches."""
    plan = scan(lines)
    candidates = matching_ids(set(plan.program_traces), wanted)
    traces = set().union(*(plan.program_traces[pid] for pid in candidates))
    try:
        spans = _spans_of(lines, traces, wanted)
    except _Changed:
        return build_timeline(_spans_of(lines, set(), None), wanted)
    if not program_ids(spans) & set(candidates):
        # no program: say how many the file has, as build_timeline would
        named = matching_ids({_program_of(s) for s in spans} - {""}, wanted)
        refused = ": only requests the gateway refused name it" if named else ""
        total = len(program_rows(lines, plan))
        raise TraceViewError(f"no program {wanted!r} in the trace file{refused} ({total} "
                             "programs; `ostinato trace list` on the same file names them)")
    return build_timeline(spans, wanted)

