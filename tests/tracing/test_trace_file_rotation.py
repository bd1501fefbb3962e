"""The file exporter's rotation (telemetry.trace_file_max_mb): past the limit the file moves
to PATH.1 and a new one starts, once for every process appending to it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from ostinato.config import ConfigError, TelemetryConfig
from tests.tracing.program_spans import FAN_OUT_ID, write_fan_out
from tracing.file_exporter import JsonLinesSpanExporter
from tracing.setup import exporters_for
from tracing.span_file import read_spans, rotated_path
from tracing.trace_cli import main


def _export(exporter: JsonLinesSpanExporter, name: str) -> None:
    """One span, one export: one line."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span(name).end()


def _names(path: Path) -> list[str]:
    return [s.name for s in read_spans(path)] if path.exists() else []


def test_rotated_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(str(path), max_bytes=1)  # every export after the first
    for name in ("a", "b", "c"):
        _export(exporter, name)
    assert (_names(rotated_path(path)), _names(path)) == (["b"], ["c"])  # "a" dropped
    exporter.shutdown()
    never = tmp_path / "never.jsonl"
    unlimited = JsonLinesSpanExporter(str(never))
    for name in ("a", "b", "c"):
        _export(unlimited, name)
    assert (_names(never), rotated_path(never).exists()) == (["a", "b", "c"], False)


def test_another_process_rotated_it(tmp_path: Path) -> None:
    """Two writers of one file (two processes: two descriptors): the one that moves it, the
    other then writes to the new file, not moving it again."""
    path = tmp_path / "spans.jsonl"
    a, b = (JsonLinesSpanExporter(str(path), max_bytes=1) for _ in range(2))
    _export(a, "a1")
    _export(b, "b1")  # past the limit: moved, b1 in the new file
    _export(a, "a2")  # a's file was moved: a2 in the new one too
    assert (_names(rotated_path(path)), _names(path)) == (["a1"], ["b1", "a2"])
    _export(a, "a3")
    assert (_names(rotated_path(path)), _names(path)) == (["b1", "a2"], ["a3"])


def test_writers_rotating_at_once_never_cut_a_line(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporters = [JsonLinesSpanExporter(str(path), max_bytes=4096) for _ in range(4)]
    threads = [threading.Thread(target=lambda e=e, i=i: [_export(e, f"s{i}-{j}") for j in range(60)])
               for i, e in enumerate(exporters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = []
    for file in (rotated_path(path), path):
        for line in file.read_text(encoding="utf-8").splitlines():
            assert json.loads(line)["resourceSpans"]  # whole lines only
        names += _names(file)
        # moved once past the limit: a line more from each writer at most (those that found
        # it below the limit, or under the old name, just before)
        assert file.stat().st_size < 4096 + 4 * 1024
    assert len(names) == len(set(names)) < 240


def test_the_limit_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    (exporter,) = exporters_for(TelemetryConfig(traces="file", trace_file=str(path), trace_file_max_mb=3))
    assert isinstance(exporter, JsonLinesSpanExporter) and exporter.max_bytes == 3 * 2**20
    with pytest.raises(ConfigError, match="trace_file_max_mb: must be 0"):
        TelemetryConfig(traces="file", trace_file=str(path), trace_file_max_mb=-1)


def test_trace_show_reads_the_rotated_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A program whose spans were written across a rotation is drawn whole."""
    path = tmp_path / "spans.jsonl"
    write_fan_out(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rotated_path(path).write_text("".join(lines[:5]), encoding="utf-8")
    path.write_text("".join(lines[5:]), encoding="utf-8")
    assert main(["trace", "show", FAN_OUT_ID, "--file", str(path), "--width", "120"]) == 0
    assert "5 calls, 1 cached, 0 failed" in capsys.readouterr().out
