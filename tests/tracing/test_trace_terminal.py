"""The terminal waterfall (tracing/trace_terminal.py), rendered to a recording console."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tests.tracing.program_spans import FAN_OUT_ID, CallSpec, write_fan_out, write_program
from tracing.span_file import read_spans
from tracing.trace_terminal import CACHED, GLYPHS, MIN_WIDTH, OTHER, bar_cells, render
from tracing.trace_view import DECODE, PREFILL, QUEUE, CallTimeline, Phase, ProgramTimeline, build_timeline

GQ, GP, GD, GO, GC = (GLYPHS[k][0] for k in (QUEUE, PREFILL, DECODE, OTHER, CACHED))


@pytest.fixture
def fan_out(tmp_path: Path) -> ProgramTimeline:
    return build_timeline(read_spans(write_fan_out(tmp_path / "spans.jsonl")), FAN_OUT_ID)


def rendered(timeline: ProgramTimeline, width: int = 120) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO())
    render(timeline, console)
    return console.export_text().splitlines()


def axis_line(lines: list[str]) -> str:
    return next(x for x in lines if "in/out tok" in x)


def rows(lines: list[str]) -> dict[str, str]:
    """Call id -> its row: the lines between the column heads and the critical path."""
    first = lines.index(axis_line(lines)) + 1
    last = next(i for i, x in enumerate(lines) if x.startswith("critical path: "))
    return {line[2:].split()[0]: line for line in lines[first:last]}


def bar_of(line: str, lines: list[str]) -> str:
    return line[axis_line(lines).index(" 0s") + 1:]


def test_header(fan_out: ProgramTimeline) -> None:
    text = "\n".join(rendered(fan_out))
    assert "program prog-fanout-7f3a (fanout)  tenant acme  3.00s  ended" in text
    assert "5 calls, 1 cached, 0 failed   critical path: 3 calls, 2.80s in calls" in text
    for label in ("queue", "prefill", "decode", "gateway", "cached", "critical path"):
        assert label in text
    assert "critical path: c-root → c-b → c-join" in text


def test_rows_in_start_order_with_marks_and_columns(fan_out: ProgramTimeline) -> None:
    lines = rendered(fan_out)
    table = rows(lines)
    assert list(table) == ["c-root", "c-a", "c-b", "c-c", "c-join"]
    assert [table[c][0] for c in table] == ["*", " ", "*", " ", "*"]
    assert table["c-root"][2:].split()[1:7] == ["t0", "worker-a", "miss", "500/100", "1.00s",
                                            GQ * 2 + GP * 5 + GD * 15 + GO]
    assert table["c-c"][2:].split()[1:6] == ["t3", "-", "exact", "600/50", "30ms"]


def test_bars_share_one_time_axis(fan_out: ProgramTimeline) -> None:
    lines = rendered(fan_out)
    bars = {c: bar_of(line, lines) for c, line in rows(lines).items()}
    start = {c: len(b) - len(b.lstrip()) for c, b in bars.items()}
    end = {c: len(b.rstrip()) for c, b in bars.items()}
    assert start["c-root"] == 0
    assert start["c-a"] == start["c-b"] == start["c-c"] > end["c-root"] - 1
    assert start["c-join"] >= end["c-b"]  # the join waited for its slowest parent
    assert end["c-b"] > end["c-a"] > end["c-c"]
    assert bars["c-c"].strip() == GC  # answered from the cache: no queue, prefill or decode
    for c in ("c-root", "c-a", "c-b", "c-join"):  # queue, then prefill, then decode
        bar = bars[c]
        assert bar.index(GQ) < bar.index(GP) < bar.index(GD), c


@pytest.mark.parametrize("width", [MIN_WIDTH, 80, 100, 160])
def test_fits_the_terminal(fan_out: ProgramTimeline, width: int) -> None:
    """Down to MIN_WIDTH, the narrowest `trace show --width`: every row whole."""
    lines = rendered(fan_out, width)
    assert all(len(line) <= width for line in lines)
    if width >= 80:  # the legend's two lines whole (a walkthrough: 80 wrapped it mid-way)
        assert any(line.rstrip().endswith("cached") and "queue" in line for line in lines)
        assert "* critical path  ! failed  x cancelled" in [line.strip() for line in lines]
    table = rows(lines)
    assert list(table) == ["c-root", "c-a", "c-b", "c-c", "c-join"]
    assert all(GD in table[c] for c in ("c-root", "c-a", "c-b", "c-join"))
    assert "3.00s" in axis_line(lines)  # the axis ends at the program's end


def test_failed_call(tmp_path: Path) -> None:
    write_program(tmp_path / "s.jsonl", "prog-bad", [
        CallSpec("c-ok", "t", 0.0, 0.5, cache_hit="semantic"),
        CallSpec("c-bad", "t", 0.6, 1.0, ("c-ok",), "w", admits=((0.6, 0.7),), error="engine went away")])
    lines = rendered(build_timeline(read_spans(tmp_path / "s.jsonl"), "prog-bad"))
    table = rows(lines)
    assert table["c-bad"].startswith("*!c-bad") and table["c-ok"][2:].split()[3] == "sem"
    assert "1 cached, 1 failed" in "\n".join(lines)
    assert lines[-1] == "! c-bad: engine went away"


def _call(start: float, end: float, *phases: Phase, cache_hit: str = "miss") -> CallTimeline:
    return CallTimeline("c", "chat m", "t", (), "w", cache_hit, 0, 0, 0, "", "OK", "", start, end, phases)


@pytest.mark.parametrize(("call", "cells"), [
    # 10 cells of 1 s: each cell takes the kind that fills most of it
    (_call(0, 10, Phase(QUEUE, 0, 2), Phase(PREFILL, 2, 3), Phase(DECODE, 3, 9.6)),
     [QUEUE] * 2 + [PREFILL] + [DECODE] * 7),
    (_call(2, 5, Phase(DECODE, 3.4, 5)), ["", "", OTHER, DECODE, DECODE] + [""] * 5),
    (_call(4.2, 4.3), [""] * 4 + [OTHER] + [""] * 5),  # shorter than a cell: still drawn
    (_call(9.9, 10, cache_hit="exact"), [""] * 9 + [CACHED]),
])
def test_bar_cells(call: CallTimeline, cells: list[str]) -> None:
    assert bar_cells(call, 10.0, 10) == cells


def test_an_id_wider_than_the_terminal_is_shown_whole(tmp_path: Path) -> None:
    """Program ids reach 193 characters (a 64-character tenant, a client's 128): the title
    line was cut to `acme/xxx…`; now it goes whole, for the terminal to wrap."""
    long_id = "acme/" + "x" * 120
    write_program(tmp_path / "s.jsonl", long_id, [CallSpec("c", "t", 0.0, 0.4)])
    lines = rendered(build_timeline(read_spans(tmp_path / "s.jsonl"), long_id), width=80)
    assert lines[0] == f"program {long_id} (fanout)  tenant acme  3.00s  ended"
    assert all(len(line) <= 80 for line in lines[1:])
