"""The table of `ostinato trace list`: one row per program, the program id always whole.

The id is what a user copies into `ostinato trace show`, so it is never cut nor folded: the
other columns wrap at their words (narrowest first) to make room for it, and where even that
does not fit, each program is drawn as its id on a line of its own, its details below.
Without a width (output to a pipe or a file) every column is as wide as its longest value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tracing.trace_index import ProgramEntry

COLUMNS = ("program", "tenant", "class", "started (UTC)", "duration", "calls", "failed",
           "cancelled", "cached", "end")
_RIGHT = frozenset({"duration", "calls", "failed", "cancelled", "cached"})
_GAP = 2  # between columns (rich's padding of 1 either side; none at the table's edges)
MIN_WIDTH = 40  # the narrowest --width: the details of a program still read as words
_INDENT = "  "  # of a program's details under its id


def cells(e: ProgramEntry) -> tuple[str, ...]:
    """One program's row, column by column (COLUMNS)."""
    started = datetime.fromtimestamp(e.start_unix_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (e.program_id, e.tenant, e.program_class, started, f"{e.duration_s:.2f}s",
            str(e.calls), str(e.failed_calls), str(e.cancelled_calls), str(e.cached_calls),
            e.end_reason or "open")


def _longest_word(value: str) -> int:
    return max((len(word) for word in value.split()), default=0)


def column_widths(rows: Sequence[tuple[str, ...]], width: int | None) -> list[int] | None:
    """Each column's width for a table of `rows` in `width` columns (None: no limit). Every
    column as wide as its longest value where that fits; else the others narrowed, each to
    no less than its longest word, and widened again, those that need least first, as far
    as the room allows; the program column is always its longest id. None: no table fits."""
    table = [COLUMNS, *rows]
    natural = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    room = None if width is None else width - _GAP * (len(COLUMNS) - 1)
    if room is None or sum(natural) <= room:
        return natural
    widths = [natural[0], *(max(_longest_word(row[i]) for row in table)
                            for i in range(1, len(COLUMNS)))]
    spare = room - sum(widths)
    if spare < 0:
        return None
    for i in sorted(range(1, len(COLUMNS)), key=lambda i: natural[i] - widths[i]):
        grant = min(spare, natural[i] - widths[i])
        widths[i] += grant
        spare -= grant
    return widths


def _table(rows: Sequence[tuple[str, ...]], widths: Sequence[int]) -> Table:
    table = Table(box=None, pad_edge=False)
    for name, width in zip(COLUMNS, widths, strict=True):
        table.add_column(name, width=width, justify="right" if name in _RIGHT else "left",
                         no_wrap=name == "program", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _details(row: tuple[str, ...]) -> Text:
    """A program's row but its id, as labelled words (the layout without a table)."""
    _, tenant, program_class, started, duration, calls, failed, cancelled, cached, end = row
    return Text(f"tenant {tenant}  class {program_class}  started {started} UTC  duration "
                f"{duration}  calls {calls}  failed {failed}  cancelled {cancelled}  cached "
                f"{cached}  {end}",
                overflow="fold")


def print_programs(entries: Sequence[ProgramEntry], console: Console, width: int | None) -> None:
    """`entries`, one row each, in `width` columns (None: no limit, `console` wide enough)."""
    rows = [cells(e) for e in entries]
    widths = column_widths(rows, width)
    if widths is not None:
        console.print(_table(rows, widths))
        return
    for row in rows:  # a line of its own for each id, never cut (the terminal may wrap it)
        console.print(Text(row[0], style="bold"), soft_wrap=True)
        for line in _details(row).wrap(console, console.width - len(_INDENT)):
            line.rstrip()
            console.print(Text(_INDENT).append_text(line))
