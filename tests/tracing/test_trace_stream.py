"""`ostinato trace list` and `show` read the span file as a stream (tracing/trace_stream.py,
tracing review 2026-12-05 F8): the same rows and timelines as reading every span first
(trace_index.program_index, trace_view.build_timeline), with only a few programs' spans in
memory at a time; the file rotated (PATH.1, then PATH) read as one."""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tracing.program_spans import FAN_OUT_ID, CallSpec, write_fan_out, write_program, write_requests
from tests.tracing.test_trace_cli import BAD_LINES
from tests.tracing.test_trace_refused import _scenario, ran, refused, write_walkthrough
from tracing import span_file, trace_stream
from tracing.span_file import SpanLines, read_span_file, read_spans, rotated_path
from tracing.trace_cli import main
from tracing.trace_index import program_index
from tracing.trace_stream import program_rows, program_timeline, scan
from tracing.trace_view import TraceViewError, build_timeline

SCENARIOS = ("retry that ran", "refused after a failed run", "failed after it ran",
             "refused, status message only", "through another gateway",
             "another tenant naming the id", "open program", "refused by the gateway")


def _fan_out_and_more(path: Path) -> None:
    write_fan_out(path)
    write_program(path, "prog-fanout-other", [CallSpec("x1", "t", 0.0, 0.2, cache_hit="exact")])
    write_program(path, "globex/late", [CallSpec("z", "t", 4.0, 4.5, error="boom")],
                  tenant="globex", program=(4.0, 5.0))
    write_program(path, "acme/open", [CallSpec("y1", "t", 2.0, 2.25)], program=None)
    # a conversation of the OpenAI-compatible API: no program span, a trace per request
    write_requests(path, "acme/conv", [ran("t1", 5.0, 5.4), ran("t2", 6.0, 6.5),
                                       refused("t2", "ALREADY_EXISTS", "again", 6.6)])


def _every_scenario(path: Path) -> None:
    """Every scenario of test_trace_refused.py in one file: `acme/p` in many traces."""
    for name in SCENARIOS:
        _scenario(path, name)


def _files(tmp_path: Path) -> Iterator[Path]:
    """Span files of several programs, as written, with their lines shuffled (traces spread
    over the file, a program's spans before its program span), and with bad lines."""
    for n, write in enumerate((_fan_out_and_more, write_walkthrough, _every_scenario)):
        path = tmp_path / f"spans{n}.jsonl"
        write(path)
        yield path
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        random.Random(n).shuffle(lines)
        shuffled = tmp_path / f"shuffled{n}.jsonl"
        shuffled.write_text("".join(lines), encoding="utf-8")
        yield shuffled
        bad = tmp_path / f"bad{n}.jsonl"
        bad.write_text("".join(line + b for line, b in zip(lines, [*BAD_LINES, *[""] * len(lines)],
                                                           strict=False)) + "\n", encoding="utf-8")
        yield bad


def _outcome(build: Any, *args: Any) -> Any:
    try:
        return build(*args)
    except TraceViewError as exc:
        return f"error: {exc}"


def test_rows_and_timelines_as_when_read_whole(tmp_path: Path) -> None:
    for path in _files(tmp_path):
        whole = read_span_file(path)
        with SpanLines(path) as lines:
            assert program_rows(lines) == program_index(whole.spans), path
            assert lines.skipped_lines == whole.skipped_lines
            ids = {e.program_id for e in program_index(whole.spans)}
            for wanted in sorted(ids | {i[:5] for i in ids} | {"nope", "prog-z", "tb/prog-zzz", "p"}):
                assert _outcome(program_timeline, lines, wanted) == \
                    _outcome(build_timeline, whole.spans, wanted), (path, wanted)


def test_cli_output_as_when_read_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`trace list` and `trace show` print what they printed when they read every span
    first (program_index and build_timeline over read_span_file), byte for byte."""
    path = tmp_path / "spans.jsonl"
    _fan_out_and_more(path)
    argvs = [["list", "--width", "160"], ["list", "--limit", "2"], ["list", "--tenant", "globex"],
             ["show", FAN_OUT_ID, "--width", "120"], ["show", "acme/conv", "--width", "100"],
             ["show", "prog-fanout-"], ["show", "nope"]]
    streamed = []
    for argv in argvs:
        rc = main(["trace", *argv, "--file", str(path)])
        streamed.append((rc, *capsys.readouterr()))
    # the same commands reading the whole file into memory first, as they did
    whole = read_spans(path)
    monkeypatch.setattr("tracing.trace_cli.program_rows", lambda lines: program_index(whole))
    monkeypatch.setattr("tracing.trace_cli.program_timeline",
                        lambda lines, wanted: build_timeline(whole, wanted))
    for argv, got in zip(argvs, streamed, strict=True):
        rc = main(["trace", *argv, "--file", str(path)])
        assert got == (rc, *capsys.readouterr()), argv


def test_list_and_show_hold_a_few_programs_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The spans alive while the file is read, counted as each line is parsed: a program or
    two of the 30 in the file (every span of the file, read whole)."""
    path = tmp_path / "spans.jsonl"
    for n in range(30):
        write_program(path, f"acme/p{n:02d}", [ran("c1", n + 0.1, n + 0.5), ran("c2", n + 0.5, n + 0.9)],
                      program=(n, n + 1.0))
    per_program = len(read_spans(path)) // 30
    alive, peak = [0], [0]
    refs: list[weakref.ref[Any]] = []
    parse = span_file.spans_of_request

    def counted(request: dict[str, Any]) -> Iterator[span_file.SpanRecord]:
        for s in parse(request):
            alive[0] += 1
            refs.append(weakref.ref(s, lambda _: alive.__setitem__(0, alive[0] - 1)))
            yield s
        peak[0] = max(peak[0], alive[0])

    monkeypatch.setattr(span_file, "spans_of_request", counted)
    assert main(["trace", "list", "--file", str(path), "--width", "160"]) == 0
    out = capsys.readouterr().out
    assert "acme/p29" in out and "\n20 of 30 programs" in out
    assert 0 < peak[0] <= 2 * per_program
    peak[0] = 0
    assert main(["trace", "show", "acme/p07", "--file", str(path), "--width", "120"]) == 0
    assert "2 calls, 0 cached, 0 failed" in capsys.readouterr().out
    assert 0 < peak[0] <= per_program + 2  # (and the lines of one span each being read)


def test_the_second_read_ends_where_the_first_did(tmp_path: Path) -> None:
    """Lines appended between the reads (a mesh still writing) are read by neither; a line
    cut short when first read is read cut short again."""
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"one\r\ntwo\rthree\n\n  four  \n{\"cut")
    with SpanLines(path) as lines:
        first = list(lines.lines())
        assert first == ["one", "two", "three", "four", '{"cut']  # as text mode reads them
        with path.open("ab") as f:
            f.write(b' short"}\nfive\n')
        assert list(lines.lines()) == first
    with SpanLines(path) as lines:
        assert list(lines.lines())[-2:] == ['{"cut short"}', "five"]


def test_a_rotated_file_is_read_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PATH.1 (the file rotated) then PATH: one file, as if never rotated."""
    whole = tmp_path / "whole.jsonl"
    _fan_out_and_more(whole)
    lines = whole.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "spans.jsonl"
    rotated_path(path).write_text("".join(lines[:len(lines) // 2]), encoding="utf-8")
    path.write_text("".join(lines[len(lines) // 2:]), encoding="utf-8")
    outputs = []
    for file in (whole, path):
        for argv in (["list", "--width", "160"], ["show", FAN_OUT_ID, "--width", "120"]):
            assert main(["trace", *argv, "--file", str(file)]) == 0
            out, err = capsys.readouterr()  # (the listing names the file it read)
            outputs.append((" ".join(out.replace(str(file), "FILE").split()), err))
    assert outputs[:2] == outputs[2:]
    assert "5 of 5 programs" in outputs[0][0]


def test_a_file_changed_between_the_reads(tmp_path: Path) -> None:
    """A plan that is not the file's (rewritten between the reads): read again, whole."""
    path = tmp_path / "spans.jsonl"
    _fan_out_and_more(path)
    other = tmp_path / "reversed.jsonl"
    other.write_text("".join(reversed(path.read_text(encoding="utf-8").splitlines(keepends=True))),
                     encoding="utf-8")
    with SpanLines(other) as first:
        plan = scan(first)
    with SpanLines(path) as lines:
        with pytest.raises(trace_stream._Changed):
            list(trace_stream._rows(lines, plan))
        assert program_rows(lines, plan) == program_index(read_spans(path))
