"""The self-contained timeline page (tracing/trace_html.py): nothing fetched, data inline."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.tracing.program_spans import FAN_OUT_ID, CallSpec, write_fan_out, write_program
from tracing.span_file import read_spans
from tracing.trace_html import write_html
from tracing.trace_view import ProgramTimeline, build_timeline


class _Page(HTMLParser):
    """The page's tags, their attributes and the text of its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self.scripts.append((self._in_script, data))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None


@pytest.fixture
def fan_out(tmp_path: Path) -> ProgramTimeline:
    return build_timeline(read_spans(write_fan_out(tmp_path / "spans.jsonl")), FAN_OUT_ID)


def parsed(timeline: ProgramTimeline, path: Path) -> tuple[str, _Page]:
    write_html(timeline, path)
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def test_nothing_is_fetched(fan_out: ProgramTimeline, tmp_path: Path) -> None:
    text, page = parsed(fan_out, tmp_path / "p.html")
    assert not [(tag, a) for tag, a in page.tags if {"src", "href"} & set(a)]
    assert not re.search(r"https?://", text)
    assert "@import" not in text and "url(" not in text
    assert {tag for tag, _ in page.tags} >= {"html", "style", "script"}
    assert [tag for tag, _ in page.tags if tag in ("link", "img", "iframe", "object", "embed")] == []


def test_timeline_data_is_embedded(fan_out: ProgramTimeline, tmp_path: Path) -> None:
    _, page = parsed(fan_out, tmp_path / "p.html")
    data = json.loads(next(t for a, t in page.scripts if a.get("type") == "application/json"))
    assert data["program_id"] == FAN_OUT_ID
    assert [c["call_id"] for c in data["calls"]] == ["c-root", "c-a", "c-b", "c-c", "c-join"]
    assert data["critical_path"] == ["c-root", "c-b", "c-join"]
    root = data["calls"][0]
    assert [(p["kind"], round(p["start_s"], 6)) for p in root["phases"]] == [
        ("queue", 0.02), ("prefill", 0.11), ("decode", 0.3)]
    assert (root["worker"], root["cache_hit"], root["on_critical_path"]) == ("worker-a", "miss", True)


def test_calls_are_drawn_by_the_script_not_written(fan_out: ProgramTimeline, tmp_path: Path) -> None:
    """No call element in the file itself: the browser test's elements prove the script ran."""
    text, page = parsed(fan_out, tmp_path / "p.html")
    assert 'data-call-id="' not in text
    assert [a.get("id") for tag, a in page.tags if tag == "div"][:3] == ["summary", "legend", "waterfall"]


def test_hostile_ids_cannot_close_the_script(tmp_path: Path) -> None:
    write_program(tmp_path / "s.jsonl", "prog-<x>",
                  [CallSpec("</script><b>", "t", 0.0, 0.1, cache_hit="exact")])
    text, page = parsed(build_timeline(read_spans(tmp_path / "s.jsonl"), "prog-<x>"), tmp_path / "p.html")
    assert "</script><b>" not in text and "<title>Ostinato program prog-&lt;x&gt;" in text
    data = json.loads(next(t for a, t in page.scripts if a.get("type") == "application/json"))
    assert data["calls"][0]["call_id"] == "</script><b>"
