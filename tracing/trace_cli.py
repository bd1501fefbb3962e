"""`ostinato trace show PROGRAM_ID`: a program's calls as a waterfall, from the trace file the
file exporter writes (telemetry.trace_file), in the terminal and optionally as a page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from ostinato.config import ConfigError, load_mesh_config
from tracing.span_file import read_spans
from tracing.trace_html import write_html
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
    trace.set_defaults(func=run)


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
    """`ostinato trace show`: 0 when shown, 1 when the file or program is not found, 2 on a
    configuration error."""
    try:
        timeline = build_timeline(read_spans(_trace_file(args)), args.program_id)
    except ConfigError as exc:
        print(f"ostinato trace show: configuration error: {exc}", file=sys.stderr)
        return 2
    except (TraceViewError, OSError) as exc:
        print(f"ostinato trace show: {exc}", file=sys.stderr)
        return 1
    console = Console(width=args.width) if args.width else Console()
    render(timeline, console)
    if args.html:
        write_html(timeline, args.html)
        console.print(f"wrote {args.html}", highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `trace` command on its own (`python -m tracing.trace_cli trace show ...`)."""
    parser = argparse.ArgumentParser(prog="ostinato")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
