"""The timeline page in a real browser: Debian's headless Chromium loads it offline, runs its
script, and every call of the program is drawn with its phases (`make chromium` installs it)."""

from __future__ import annotations

import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.tracing.program_spans import FAN_OUT_ID, CallSpec, write_fan_out, write_program
from tracing.span_file import read_spans
from tracing.trace_html import write_html
from tracing.trace_view import ProgramTimeline, build_timeline

CHROMIUM = Path("/usr/bin/chromium")


class _Drawn(HTMLParser):
    """Call elements of the rendered DOM: call id -> (classes, phase kinds under it)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, tuple[list[str], list[str]]] = {}
        self.body: dict[str, str | None] = {}
        self._stack: list[str | None] = []  # the call id each open div belongs to

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag != "div":
            return
        call = a.get("data-call-id") or (self._stack[-1] if self._stack else None)
        if a.get("data-call-id"):
            self.calls[call] = ((a.get("class") or "").split(), [])
        elif call is not None and a.get("data-phase"):
            self.calls[call][1].append(a["data-phase"] or "")
        self._stack.append(call)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._stack:
            self._stack.pop()


def browser_dom(page: Path, tmp: Path) -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    profile = tmp / "chromium-profile"
    out = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def drawn(timeline: ProgramTimeline, tmp: Path) -> _Drawn:
    write_html(timeline, tmp / "program.html")
    dom = _Drawn()
    dom.feed(browser_dom(tmp / "program.html", tmp))
    return dom


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
