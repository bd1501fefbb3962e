"""`ostinato trace show` (tracing/trace_cli.py): the program found, shown, written as a page,
and clear errors with exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracing.program_spans import FAN_OUT_ID, CallSpec, write_fan_out, write_program
from tracing.trace_cli import main

ENV_FILE = "OSTINATO_TELEMETRY__TRACE_FILE"


@pytest.fixture
def spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(ENV_FILE, raising=False)
    path = write_fan_out(tmp_path / "spans.jsonl")
    write_program(path, "prog-fanout-other", [CallSpec("x1", "t", 0.0, 0.2, cache_hit="exact")])
    return path


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["trace", "show", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_fan_out_shown(out: str) -> None:
    assert "program prog-fanout-7f3a (fanout)  tenant acme  3.00s  ended" in out
    assert "5 calls, 1 cached, 0 failed" in out
    rows = [line for line in out.splitlines() if line[2:].startswith("c-")]
    assert [r[2:].split()[0] for r in rows] == ["c-root", "c-a", "c-b", "c-c", "c-join"]
    assert "critical path: c-root → c-b → c-join" in out


def test_show_with_file(spans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = show(capsys, FAN_OUT_ID, "--file", str(spans), "--width", "120")
    assert (rc, err) == (0, "")
    assert_fan_out_shown(out)
    assert all(len(line) <= 120 for line in out.splitlines())


def test_show_by_prefix_and_html(spans: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "program.html"
    rc, out, _ = show(capsys, "prog-fanout-7", "--file", str(spans), "--html", str(page), "--width", "100")
    assert rc == 0
    assert_fan_out_shown(out)
    assert out.rstrip().endswith(f"wrote {page}")
    assert '"call_id": "c-join"' in page.read_text(encoding="utf-8")


def test_trace_file_from_the_environment(spans: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FILE, str(spans))
    rc, out, _ = show(capsys, FAN_OUT_ID, "--width", "120")
    assert rc == 0
    assert_fan_out_shown(out)


def test_trace_file_from_the_config(spans: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mesh.yaml"
    config.write_text(f"telemetry:\n  traces: file\n  trace_file: {spans}\n")
    rc, out, _ = show(capsys, FAN_OUT_ID, "--config", str(config), "--width", "120")
    assert rc == 0
    assert_fan_out_shown(out)


@pytest.mark.parametrize(("argv", "message"), [
    (["nope", "--file", "{spans}"], "no program 'nope' in the trace file (2 programs)"),
    (["prog-fanout-", "--file", "{spans}"],
     "program id 'prog-fanout-' is ambiguous: prog-fanout-7f3a, prog-fanout-other"),
    ([FAN_OUT_ID, "--file", "/nonexistent/spans.jsonl"], "no such trace file: /nonexistent/spans.jsonl"),
    ([FAN_OUT_ID], "no trace file: pass --file (or set telemetry.trace_file)"),  # nothing configured
])
def test_errors(spans: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    rc, out, err = show(capsys, *(a.format(spans=spans) for a in argv))
    assert (rc, out) == (1, "")
    assert err == f"ostinato trace show: {message}\n"


def test_as_a_command(spans: Path) -> None:
    """A process of its own: exit status, stdout and stderr as a user sees them."""
    ok = subprocess.run([sys.executable, "-m", "tracing.trace_cli", "trace", "show", "prog-fanout-7",
                         "--file", str(spans), "--width", "80"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert_fan_out_shown(ok.stdout)
    missing = subprocess.run([sys.executable, "-m", "tracing.trace_cli", "trace", "show", "p",
                              "--file", str(spans.parent / "missing.jsonl")], capture_output=True, text=True,
                             timeout=60)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "no such trace file" in missing.stderr


def test_configuration_error(spans: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTINATO_TELEMETRY__TRACES", "carrier-pigeon")
    rc, out, err = show(capsys, FAN_OUT_ID)
    assert (rc, out) == (2, "")
    assert err.startswith("ostinato trace show: configuration error: telemetry.traces: unknown exporter")
