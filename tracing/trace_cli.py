"""`ostinato trace show PROGRAM_ID`: a program's calls as a waterfall, from the trace file the
file exporter writes (telemetry.trace_file), in the terminal and optionally as a page;
`ostinato trace list`: the programs in that file, newest first."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ostinato.config import ConfigError, load_mesh_config
from tracing.span_file import read_span_file
from tracing.trace_html import write_html
from tracing.trace_index import ProgramEntry, program_index
from tracing.trace_terminal import render
from tracing.trace_view import TraceViewError, build_timeline


def add_parser(sub: Any) -> None:
    trace = sub.add_parser("trace", help="look at recorded traces (the file exporter's JSON lines)")
    act = trace.add_subparsers(dest="trace_action", required=True, metavar="ACTION")
    show = act.add_parser("show", help="one program's calls on a time axis: queue wait, prefill, "
                                       "decode, worker, cache hits, critical path")
    show.add_argument("program_id", metavar="PROGRAM_ID", help="the program's id, or a unique prefix")
    show.add_argument("--file", help="OTLP JSON lines to read (default: the mesh config's "
                                     "telemetry.trace_file)")
    show.add_argument("--config", help="YAML mesh config file (for telemetry.trace_file)")
    show.add_argument("--html", metavar="OUT", help="also write the timeline as one self-contained "
                                                    "HTML page (opens offline)")
    show.add_argument("--width", type=int, help="terminal columns (default: the terminal's width)")
    listing = act.add_parser("list", help="the programs in the trace file, newest first: id, "
                                          "tenant, class, start, duration, calls")
    listing.add_argument("--file", help="OTLP JSON lines to read (default: the mesh config's "
                                        "telemetry.trace_file)")
    listing.add_argument("--config", help="YAML mesh config file (for telemetry.trace_file)")
    listing.add_argument("--tenant", help="only this tenant's programs")
    listing.add_argument("--limit", type=_positive, default=20,
                         help="at most this many programs (default 20)")
    listing.add_argument("--width", type=int, help="terminal columns (default: the terminal's width)")
    trace.set_defaults(func=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _trace_file(args: argparse.Namespace) -> Path:
    if args.file:
        path = Path(args.file)
    else:
        configured = load_mesh_config(args.config).telemetry.trace_file
        if not configured:
            raise TraceViewError("no trace file: pass --file (or set telemetry.trace_file)")
        path = Path(configured)
    if not path.is_file():
        raise TraceViewError(f"no such trace file: {path}")
    return path


def run(args: argparse.Namespace) -> int:
    """`ostinato trace show|list`: 0 when shown, 1 when the file (or the program) is not
    found, 2 on a configuration error."""
    console = Console(width=args.width) if args.width else Console()
    try:
        read = read_span_file(_trace_file(args))
        spans = read.spans
        if read.skipped_lines:
            print(f"ostinato trace {args.trace_action}: skipped {read.skipped_lines} line(s) "
                  "that are not OTLP JSON spans", file=sys.stderr)
        if args.trace_action == "list":
            _list(program_index(spans, tenant=args.tenant), args.limit, console)
            return 0
        timeline = build_timeline(spans, args.program_id)
    except ConfigError as exc:
        print(f"ostinato trace {args.trace_action}: configuration error: {exc}", file=sys.stderr)
        return 2
    except (TraceViewError, OSError) as exc:
        print(f"ostinato trace {args.trace_action}: {exc}", file=sys.stderr)
        return 1
    render(timeline, console)
    if args.html:
        write_html(timeline, args.html)
        console.print(f"wrote {args.html}", highlight=False)
    return 0


def _list(entries: list[ProgramEntry], limit: int, console: Console) -> None:
    if not entries:
        console.print("no programs in the trace file", highlight=False)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("program", "tenant", "class", "started (UTC)", "duration", "calls",
                   "failed", "cached", "end"):
        table.add_column(column, justify="right" if column in ("duration", "calls", "failed",
                                                               "cached") else "left")
    for e in entries[:limit]:
        started = datetime.fromtimestamp(e.start_unix_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(e.program_id, e.tenant, e.program_class, started, f"{e.duration_s:.2f}s",
                      str(e.calls), str(e.failed_calls), str(e.cached_calls),
                      e.end_reason or "open")
    console.print(table)
    shown = min(limit, len(entries))
    console.print(f"{shown} of {len(entries)} programs; `ostinato trace show PROGRAM_ID` draws "
                  "one (an id's prefix will do)", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """The `trace` command on its own (`python -m tracing.trace_cli trace show ...`)."""
    parser = argparse.ArgumentParser(prog="ostinato")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
