"""The timeline page in a real browser: Debian's headless Chromium loads it offline, runs its
script, and every call of the program is drawn with its phases."""

from __future__ import annotations

from pathlib import Path

from tests.tracing.chromium_dom import DrawnCalls, drawn_calls
from tests.tracing.program_spans import FAN_OUT_ID, CallSpec, write_fan_out, write_program
from tracing.span_file import read_spans
from tracing.trace_html import write_html
from tracing.trace_view import ProgramTimeline, build_timeline


def drawn(timeline: ProgramTimeline, tmp: Path) -> DrawnCalls:
    write_html(timeline, tmp / "program.html")
    return drawn_calls(tmp / "program.html", tmp)


def test_every_call_is_drawn(tmp_path: Path) -> None:
    timeline = build_timeline(read_spans(write_fan_out(tmp_path / "spans.jsonl")), FAN_OUT_ID)
    dom = drawn(timeline, tmp_path)
    assert dom.body.get("data-drawn-calls") == "5"
    assert list(dom.calls) == [c.call_id for c in timeline.calls]
    for call in timeline.calls:
        classes, phases = dom.calls[call.call_id]
        assert phases == [p.kind for p in call.phases], call.call_id
        assert ("critical" in classes) == call.on_critical_path
        assert ("cached" in classes) == call.cached
    assert dom.calls["c-c"][1] == []  # the cached call: its span only


def test_failed_and_open_program(tmp_path: Path) -> None:
    """No program span, a failed call, an id that needs escaping: still every call drawn."""
    write_program(tmp_path / "spans.jsonl", "prog-open", [
        CallSpec("c-1 <&>", "t", 0.0, 0.4, worker="w", admits=((0.0, 0.1),), engine=(0.1, 0.4),
                 first_token=0.2),
        CallSpec("c-2", "t", 0.5, 0.9, ("c-1 <&>",), "w", admits=((0.5, 0.6),), error="engine went away")],
        program=None)
    timeline = build_timeline(read_spans(tmp_path / "spans.jsonl"), "prog-open")
    dom = drawn(timeline, tmp_path)
    assert list(dom.calls) == ["c-1 <&>", "c-2"]
    assert "failed" in dom.calls["c-2"][0] and dom.calls["c-2"][1] == ["queue"]
    assert dom.calls["c-1 <&>"][1] == ["queue", "prefill", "decode"]
