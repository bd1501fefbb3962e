"""`ostinato trace show PROGRAM_ID`: a program's calls as a waterfall, from the trace file the
file exporter writes (telemetry.trace_file), in the terminal and optionally as a page;
`ostinato trace list`: the programs in that file, newest first."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from ostinato.config import ConfigError, load_mesh_config
from tracing.span_file import SpanLines
from tracing.trace_html import write_html
from tracing.trace_index import ProgramEntry
from tracing.trace_listing import MIN_WIDTH as LIST_MIN_WIDTH
from tracing.trace_listing import print_programs
from tracing.trace_stream import program_rows, program_timeline
from tracing.trace_terminal import MIN_WIDTH as SHOW_MIN_WIDTH
from tracing.trace_terminal import render
from tracing.trace_view import TraceViewError

_NO_LIMIT = 100_000  # the console's width for output to a pipe or a file: lines never folded


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
    show.add_argument("--width", type=_width(SHOW_MIN_WIDTH),
                      help=f"terminal columns, at least {SHOW_MIN_WIDTH} (default: the "
                           "terminal's width)")
    listing = act.add_parser("list", help="the programs in the trace file, newest first: id, "
                                          "tenant, class, start, duration, calls")
    listing.add_argument("--file", help="OTLP JSON lines to read (default: the mesh config's "
                                        "telemetry.trace_file)")
    listing.add_argument("--config", help="YAML mesh config file (for telemetry.trace_file)")
    listing.add_argument("--tenant", help="only this tenant's programs")
    listing.add_argument("--limit", type=_positive, default=20,
                         help="at most this many programs (default 20)")
    listing.add_argument("--width", type=_width(LIST_MIN_WIDTH),
                         help=f"terminal columns, at least {LIST_MIN_WIDTH} (default: the "
                              "terminal's width; to a pipe or a file, lines as long as they are)")
    trace.set_defaults(func=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _width(minimum: int) -> Callable[[str], int]:
    """The type of a --width: columns, at least `minimum` (argparse refuses others: exit 2)."""
    def columns(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of columns, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} columns, got {value}")
        return value
    return columns


def _trace_file(args: argparse.Namespace) -> Path:
    if args.file:
        path = Path(args.file)
    else:
        configured = load_mesh_config(args.config).telemetry.trace_file
        if not configured:
            raise TraceViewError("no trace file: pass --file (or set telemetry.trace_file)")
        path = Path(configured)
    if path.is_dir():
        raise TraceViewError(f"a directory, not a trace file: {path}")
    if not path.is_file():
        raise TraceViewError(f"no such trace file: {path}")
    return path


def run(args: argparse.Namespace) -> int:
    """`ostinato trace show|list`: 0 when shown, 1 when the file (or the program) is not
    found, 2 on a configuration error. The file (and the one it was rotated to before,
    PATH.1) is read as a stream (tracing/trace_stream.py); the lines that hold no spans are
    counted on stderr."""
    try:
        with SpanLines(_trace_file(args)) as lines:
            try:
                if args.trace_action == "list":
                    entries = program_rows(lines)
                else:
                    timeline = program_timeline(lines, args.program_id)
            finally:
                if lines.skipped_lines:
                    print(f"ostinato trace {args.trace_action}: skipped {lines.skipped_lines} "
                          "line(s) that are not OTLP JSON spans", file=sys.stderr)
        if args.trace_action == "list":
            _list(entries, args)
            return 0
    except ConfigError as exc:
        print(f"ostinato trace {args.trace_action}: configuration error: {exc}", file=sys.stderr)
        return 2
    except (TraceViewError, OSError) as exc:
        print(f"ostinato trace {args.trace_action}: {exc}", file=sys.stderr)
        return 1
    console = Console(width=args.width) if args.width else Console()
    render(timeline, console)
    if args.html:
        write_html(timeline, args.html)
        console.print(f"wrote {args.html}", highlight=False)
    return 0


def _list_console(width: int | None) -> tuple[Console, int | None]:
    """The console `trace list` prints to, and the width its rows must fit: --width, else
    the terminal's; to a pipe or a file, none (rows as long as they are, nothing folded)."""
    if width:
        return Console(width=width), width
    console = Console()
    if console.is_terminal:
        return console, console.width
    return Console(width=_NO_LIMIT), None


def _list(entries: list[ProgramEntry], args: argparse.Namespace) -> None:
    console, width = _list_console(args.width)
    listed = [e for e in entries if args.tenant is None or e.tenant == args.tenant]
    if not listed:
        console.print(_none_listed(entries, args.tenant), highlight=False)
        return
    print_programs(listed[:args.limit], console, width)
    file = f" --file {shlex.quote(args.file)}" if args.file else ""  # (else the config's)
    console.print(f"{min(args.limit, len(listed))} of {len(listed)} programs; `ostinato trace "
                  f"show PROGRAM_ID{file}` draws one (an id's prefix will do)", highlight=False,
                  markup=False)


def _none_listed(entries: list[ProgramEntry], tenant: str | None) -> str:
    """Why `trace list` lists nothing: no programs at all, or none of `tenant`'s."""
    if not entries:
        return "no programs in the trace file"
    tenants = sorted({e.tenant for e in entries})
    named = ", ".join(tenants[:10]) + (", ..." if len(tenants) > 10 else "")
    return (f"no programs of tenant {tenant!r} in the trace file ({len(entries)} of "
            f"other tenants: {named})")


def main(argv: list[str] | None = None) -> int:
    """The `trace` command on its own (`python -m tracing.trace_cli trace show ...`)."""
    parser = argparse.ArgumentParser(prog="ostinato")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
