"""Reading spans back from OTLP JSON lines (the file exporter's output)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tracing.otlp_json import attributes

_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str  # "" for a root span
    name: str
    kind: str  # INTERNAL | SERVER | CLIENT | PRODUCER | CONSUMER
    start_ns: int
    end_ns: int
    service: str  # the resource's service.name
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"  # UNSET | OK | ERROR
    status_message: str = ""
    events: tuple[SpanEvent, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (trace_id, span_id)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return value.removeprefix("SPAN_KIND_")
    return _KINDS.get(int(value or 1), "INTERNAL")


def _status(status: dict[str, Any]) -> str:
    code = status.get("code", 0)
    if isinstance(code, str):
        return code.removeprefix("STATUS_CODE_")
    return _STATUS.get(int(code), "UNSET")


# control characters but newline and tab (C0, DEL, C1): a span file may come from anywhere,
# and what `ostinato trace` prints must not drive the operator's terminal (an escape
# sequence in a call id or a program class: tracing review 2026-12-05 F9)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(value: Any) -> Any:
    """`value` with each control character a U+FFFD (strings, and the lists of strings
    attributes hold)."""
    if isinstance(value, str):
        return _CONTROL.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


def _safe_attributes(raw: Any) -> dict[str, Any]:
    return {printable(k): printable(v) for k, v in attributes(raw).items()}


def spans_of_request(request: dict[str, Any]) -> Iterator[SpanRecord]:
    """The spans of one ExportTraceServiceRequest in OTLP JSON, control characters in their
    text replaced (_CONTROL)."""
    for rs in request.get("resourceSpans", []):
        resource = _safe_attributes(rs.get("resource", {}).get("attributes", []))
        service = str(resource.get("service.name", ""))
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                yield SpanRecord(
                    trace_id=s["traceId"], span_id=s["spanId"],
                    parent_id=s.get("parentSpanId", ""), name=printable(s.get("name", "")),
                    kind=_kind(s.get("kind", 1)),
                    start_ns=int(s.get("startTimeUnixNano", 0)),
                    end_ns=int(s.get("endTimeUnixNano", 0)), service=service,
                    attributes=_safe_attributes(s.get("attributes", [])),
                    status=_status(s.get("status", {})),
                    status_message=printable(s.get("status", {}).get("message", "")),
                    events=tuple(SpanEvent(printable(e.get("name", "")), int(e.get("timeUnixNano", 0)),
                                           _safe_attributes(e.get("attributes", [])))
                                 for e in s.get("events", [])),
                    links=tuple((ln["traceId"], ln["spanId"]) for ln in s.get("links", [])),
                )


def request_spans(line: str) -> list[SpanRecord] | None:
    """The spans of one line of a span file; None for a line that is not an OTLP JSON request
    of well-formed spans (one cut short by a process killed mid-write, or not a trace file's:
    JSON without `resourceSpans` too, or ids that are not strings)."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict) or "resourceSpans" not in request:
            raise TypeError("not an OTLP JSON export request")
        spans = list(spans_of_request(request))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not all(isinstance(i, str) for s in spans for i in (s.trace_id, s.span_id, s.parent_id)):
        return None  # (a list for an id failed later, unhashable, with a traceback)
    return spans


@dataclass(frozen=True)
class SpanFile:
    spans: list[SpanRecord]
    skipped_lines: int  # lines that are not OTLP JSON spans (cut short, or another file's)


def read_span_file(path: str | Path) -> SpanFile:
    """Every span in an OTLP JSON lines file, all in memory (`ostinato trace` streams the
    file instead: tracing/trace_stream.py). A line that is not an OTLP JSON request of
    well-formed spans is skipped whole and counted (request_spans)."""
    out: list[SpanRecord] = []
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            spans = request_spans(line)
            if spans is None:
                skipped += 1
                continue
            out.extend(spans)
    return SpanFile(out, skipped)


def read_spans(path: str | Path) -> list[SpanRecord]:
    """The spans of read_span_file(path)."""
    return read_span_file(path).spans


ROTATED_SUFFIX = ".1"  # PATH.1: the file exporter's file before PATH (tracing/file_exporter.py)


def rotated_path(path: str | Path) -> Path:
    """Where the span file at `path` was moved when it was rotated (the lines before its own)."""
    return Path(f"{path}{ROTATED_SUFFIX}")


class SpanLines:
    """The lines of a span file, after those of the file it was rotated to before (PATH.1,
    when there is one), read as `ostinato trace` reads them: a line at a time, and as often
    as it takes (tracing/trace_stream.py reads twice), each read after the first ending
    where the first did, so that lines appended meanwhile (by a mesh still running) are read
    by every pass or by none.

    Lines are read as read_span_file reads them: UTF-8 (bytes that are not UTF-8 replaced),
    ended by \\n, \\r\\n or \\r, stripped, the empty ones left out."""

    def __init__(self, path: str | Path) -> None:
        older = rotated_path(path)
        self.paths = (older, Path(path)) if older.is_file() else (Path(path),)
        self._files: list[BinaryIO] = []
        try:
            for p in self.paths:
                self._files.append(open(p, "rb"))  # noqa: SIM115 (closed by close())
        except OSError:
            self.close()
            raise
        self._ends: list[int] | None = None  # each file's size at the end of the first read
        self.skipped_lines = 0  # of the last read by requests()

    def __enter__(self) -> SpanLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for f in self._files:
            f.close()

    def lines(self) -> Iterator[str]:
        """Each line, in order: the rotated file's, then the file's."""
        ends = self._ends
        read: list[int] = []
        for n, f in enumerate(self._files):
            f.seek(0)
            left = -1 if ends is None else ends[n]  # -1: to the end of the file
            while left:
                raw = f.readline(left)
                if not raw:
                    break
                if left > 0:
                    left -= len(raw)
                # (text mode's universal newlines: \r ends a line too; \r\n ends in one raw line)
                for piece in raw.decode("utf-8", "replace").split("\r"):
                    piece = piece.strip()
                    if piece:
                        yield piece
            read.append(f.tell())
        if ends is None:
            self._ends = read

    def requests(self) -> Iterator[tuple[int, list[SpanRecord]]]:
        """(line number, its spans) for each line of spans, numbered as lines() yields them;
        the lines that hold none (request_spans) are counted in skipped_lines."""
        self.skipped_lines = 0
        for number, line in enumerate(self.lines()):
            spans = request_spans(line)
            if spans is None:
                self.skipped_lines += 1
            else:
                yield number, spans
