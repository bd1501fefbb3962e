"""`ostinato trace show` (tracing/trace_cli.py): the program found, shown, written as a page,
and clear errors with exit code 1."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
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
    (["nope", "--file", "{spans}"],
     "no program 'nope' in the trace file (2 programs; `ostinato trace list` on the same file names them)"),
    (["prog-fanout-", "--file", "{spans}"],
     "program id 'prog-fanout-' is ambiguous: prog-fanout-7f3a, prog-fanout-other"),
    ([FAN_OUT_ID, "--file", "/nonexistent/spans.jsonl"], "no such trace file: /nonexistent/spans.jsonl"),
    ([FAN_OUT_ID], "no trace file: pass --file (or set telemetry.trace_file)"),  # nothing configured
])
def test_errors(spans: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    rc, out, err = show(capsys, *(a.format(spans=spans) for a in argv))
    assert (rc, out) == (1, "")
    assert err == f"ostinato trace show: {message}\n"


def test_list(spans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The programs, newest first (same start here: by id), with what `show` would say."""
    write_program(spans, "globex/late", [CallSpec("z", "t", 4.0, 4.5, error="boom")],
                  tenant="globex", program=(4.0, 5.0))
    rc = main(["trace", "list", "--file", str(spans), "--width", "160"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    rows = [line.split() for line in out.splitlines()[1:4]]
    assert [r[0] for r in rows] == ["globex/late", FAN_OUT_ID, "prog-fanout-other"]
    assert rows[0][1:3] == ["globex", "fanout"] and rows[0][5:] == ["1.00s", "1", "1", "0", "0",
                                                                             "ended"]
    assert rows[1][5:] == ["3.00s", "5", "0", "0", "1", "ended"]
    # the file named, for the command to be copied
    assert f"3 of 3 programs; `ostinato trace show PROGRAM_ID --file {spans}` draws one" in \
        " ".join(out.split())
    rc = main(["trace", "list", "--file", str(spans), "--tenant", "globex", "--limit", "5"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "globex/late" in out and FAN_OUT_ID not in out
    rc = main(["trace", "list", "--file", str(spans), "--limit", "1", "--width", "160"])
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1].startswith("1 of 3 programs")


@pytest.mark.parametrize(("argv", "rc", "err"), [
    (["--file", "/nonexistent/spans.jsonl"], 1,
     "ostinato trace list: no such trace file: /nonexistent/spans.jsonl\n"),
    ([], 1, "ostinato trace list: no trace file: pass --file (or set telemetry.trace_file)\n"),
])
def test_list_errors(spans: Path, capsys: pytest.CaptureFixture[str], argv: list[str], rc: int,
                     err: str) -> None:
    assert main(["trace", "list", *argv]) == rc
    out, got = capsys.readouterr()
    assert (out, got) == ("", err)


def test_list_of_nothing_and_a_bad_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["trace", "list", "--file", str(empty)]) == 0
    assert capsys.readouterr().out == "no programs in the trace file\n"
    with pytest.raises(SystemExit) as exc:
        main(["trace", "list", "--file", str(empty), "--limit", "0"])
    assert exc.value.code == 2
    assert "--limit: must be at least 1, got 0" in capsys.readouterr().err


BAD_LINES = ['[1, 2]', '{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}',
             'hello', '{"resourceSpans": "no"}', '{"resourceSpans": [{"scopeSpans": [{"sp']


def test_lines_that_are_not_spans_are_skipped_and_counted(
        spans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another file's lines, a span without ids, a line cut short: each skipped whole and
    said on stderr (a JSON array line was an AttributeError traceback, a span without a
    traceId a KeyError); the programs around them still shown."""
    with spans.open("a", encoding="utf-8") as f:
        f.write("\n".join(BAD_LINES) + "\n")
    rc, out, err = show(capsys, FAN_OUT_ID, "--file", str(spans), "--width", "120")
    assert rc == 0 and err == "ostinato trace show: skipped 5 line(s) that are not OTLP JSON spans\n"
    assert_fan_out_shown(out)
    assert main(["trace", "list", "--file", str(spans), "--width", "160"]) == 0
    out, err = capsys.readouterr()
    assert "skipped 5 line(s)" in err and FAN_OUT_ID in out


def test_a_file_of_no_spans_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "notes.txt"
    other.write_bytes(b"\xff\xfe not utf-8\n" + "\n".join(BAD_LINES).encode())
    assert main(["trace", "list", "--file", str(other)]) == 0
    out, err = capsys.readouterr()
    assert out == "no programs in the trace file\n"
    assert err == "ostinato trace list: skipped 6 line(s) that are not OTLP JSON spans\n"
    rc, out, err = show(capsys, "p", "--file", str(other))
    assert rc == 1 and "no program 'p' in the trace file (0 programs" in err


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


LONG_ID = "default/8dc5dfc029b241d1b49400170b21a4a2"  # an id the gateway makes: TENANT/uuid hex


def long_ids(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "long.jsonl"
    ids = [LONG_ID, "default/cf1bed968e264698b7230159e683106e"]
    for n, pid in enumerate(ids):
        write_program(path, pid, [CallSpec(f"c{n}", "t", n, n + 0.4)], tenant="default",
                      program=(n, n + 0.5))
    return path, ids


def test_list_to_a_pipe_keeps_whole_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a terminal (rich's 80 columns then cut the ids to `default/8dc…`): rows as long
    as they are, each id whole, for `trace show` to take."""
    path, ids = long_ids(tmp_path)
    assert main(["trace", "list", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:3]]
    assert [r[0] for r in rows] == ids[::-1] and all(len(r) == 11 for r in rows)
    assert show(capsys, out.splitlines()[1].split()[0], "--file", str(path), "--width", "100")[0] == 0


def _strip_ansi(raw: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode()).replace("\r\n", "\n")


def test_list_in_an_80_column_terminal(tmp_path: Path) -> None:
    """In a real terminal (a pty) of 80 columns: every id whole, every line within 80."""
    path, ids = long_ids(tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "tracing.trace_cli", "trace", "list", "--file",
                             str(path)], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                            env={**env, "TERM": "xterm-256color"})
    os.close(slave)
    raw = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            raw += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None and proc.stderr.read() == b""
    lines = _strip_ansi(raw).splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert [line for line in lines if line in ids] == ids[::-1]  # each id a line of its own
    assert any(line.startswith("  tenant default  class fanout  started ") for line in lines)


@pytest.mark.parametrize(("action", "width", "message"), [
    (["list"], "10", "must be at least 40 columns, got 10"),
    (["list"], "wide", "expected a number of columns, got 'wide'"),
    (["show", FAN_OUT_ID], "62", "must be at least 63 columns, got 62"),
])
def test_too_narrow_a_width_is_refused(spans: Path, capsys: pytest.CaptureFixture[str],
                                       action: list[str], width: str, message: str) -> None:
    """`trace list --width 10` printed blank rows (every column cut to nothing)."""
    with pytest.raises(SystemExit) as refused:
        main(["trace", *action, "--file", str(spans), "--width", width])
    assert refused.value.code == 2
    assert f"argument --width: {message}" in capsys.readouterr().err


def test_list_of_a_tenant_with_no_programs(spans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "list", "--file", str(spans), "--tenant", "nobody"]) == 0
    assert capsys.readouterr().out == ("no programs of tenant 'nobody' in the trace file "
                                       "(2 of other tenants: acme)\n")


@pytest.mark.parametrize("action", [["list"], ["show", FAN_OUT_ID]])
def test_a_directory_is_no_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      action: list[str]) -> None:
    assert main(["trace", *action, "--file", str(tmp_path)]) == 1
    assert capsys.readouterr() == ("", f"ostinato trace {action[0]}: a directory, not a trace "
                                       f"file: {tmp_path}\n")


def test_json_lines_that_are_not_spans_are_counted(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """JSON objects with no `resourceSpans`: another file's lines, said as such (they gave
    "no programs" and no warning)."""
    other = tmp_path / "events.jsonl"
    other.write_text('{"a": 1}\n{}\n{"event": "start", "resourceSpan": []}\n')
    assert main(["trace", "list", "--file", str(other)]) == 0
    assert capsys.readouterr() == ("no programs in the trace file\n", "ostinato trace list: "
                                   "skipped 3 line(s) that are not OTLP JSON spans\n")


def test_control_characters_in_a_span_file_never_reach_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing review 2026-12-05 F9: a program id or call id holding an escape sequence was
    printed raw by `trace list` and `trace show` (a span file may come from anywhere)."""
    monkeypatch.delenv(ENV_FILE, raising=False)
    path = tmp_path / "esc.jsonl"
    evil = "default/p\x1b]0;pwned\x07\x1b[2J"
    write_program(path, evil, [CallSpec("c\x1b[5mBLINK", "t", 0.0, 0.4)], tenant="default")
    assert main(["trace", "list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    rc, shown, _ = show(capsys, "--file", str(path), "default/p")
    assert rc == 0 and "BLINK" in shown and "\ufffd" in listed + shown
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", listed + shown)
