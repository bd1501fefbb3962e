"""The programs of a trace file (tracing/trace_index.py): one row each, newest first, calls
counted as `trace show` counts them, filtered by tenant."""

from __future__ import annotations

from pathlib import Path

from tests.tracing.program_spans import FAN_OUT_ID, T0_NS, CallSpec, write_fan_out, write_program
from tracing.span_file import read_spans
from tracing.trace_index import ProgramEntry, program_index


def _spans(tmp_path: Path) -> Path:
    path = write_fan_out(tmp_path / "spans.jsonl")
    write_program(path, "globex/late", [CallSpec("x1", "t", 5.0, 5.5, error="engine failed"),
                                        CallSpec("x2", "t", 5.5, 6.0, cache_hit="exact")],
                  tenant="globex", program=(5.0, 6.5))
    write_program(path, "acme/open", [CallSpec("y1", "t", 2.0, 2.25)], program=None)
    write_program(path, "acme/chat", [CallSpec("z1", "t", 1.0, 1.25, kind="conversation")],
                  program=None)
    return path


def test_every_program_once_newest_first(tmp_path: Path) -> None:
    entries = program_index(read_spans(_spans(tmp_path)))
    assert [e.program_id for e in entries] == ["globex/late", "acme/open", "acme/chat",
                                               FAN_OUT_ID]
    assert entries[0] == ProgramEntry(
        program_id="globex/late", tenant="globex", program_class="fanout", end_reason="ended",
        start_unix_ns=T0_NS + 5 * 10**9, duration_s=1.5, calls=2, failed_calls=1, cached_calls=1)
    fan_out = entries[3]
    assert (fan_out.tenant, fan_out.calls, fan_out.cached_calls, fan_out.failed_calls,
            fan_out.duration_s) == ("acme", 5, 1, 0, 3.0)
    # no program span (still open, or another gateway's): the tenant from its calls, no end
    still_open = entries[1]
    assert (still_open.tenant, still_open.end_reason, still_open.calls) == ("acme", "", 1)
    # an OpenAI-API conversation has no program span by design: named so, not "open"
    assert entries[2].end_reason == "conversation"


def test_filtered_by_tenant_and_empty(tmp_path: Path) -> None:
    spans = read_spans(_spans(tmp_path))
    assert [e.program_id for e in program_index(spans, tenant="globex")] == ["globex/late"]
    assert program_index(spans, tenant="nobody") == []
    assert program_index([]) == []


def test_a_cancelled_call_is_counted_apart_from_failed_ones(tmp_path: Path) -> None:
    """Trace review 2026-12-06: `trace list` and `show` counted a call its caller cancelled
    as failed (its span ends in error), where the program's summary says cancelled."""
    from tracing.trace_view import build_timeline

    path = tmp_path / "spans.jsonl"
    write_program(path, "acme/cut", [
        CallSpec("c1", "t", 0.0, 0.5, error="cancelled (CancelledError)", error_type="cancelled"),
        CallSpec("c2", "t", 0.5, 1.0, error="DEADLINE_EXCEEDED: too late",
                 error_type="DEADLINE_EXCEEDED"),
        CallSpec("c3", "t", 1.0, 1.5, error="CANCELLED: program ended", error_type="CANCELLED"),
        CallSpec("c4", "t", 1.5, 2.0)], program=(0.0, 2.0))
    spans = read_spans(path)
    [entry] = program_index(spans)
    assert (entry.calls, entry.failed_calls, entry.cancelled_calls) == (4, 1, 2)
    timeline = build_timeline(spans, "acme/cut")
    assert (timeline.failed_calls, timeline.cancelled_calls) == (1, 2)
    assert [c.call_id for c in timeline.calls if c.cancelled] == ["c1", "c3"]
