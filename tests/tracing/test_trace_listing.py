"""The table of `ostinato trace list` (tracing/trace_listing.py), rendered to a recording
console: program ids whole at every width, every other value still there."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tracing.trace_index import ProgramEntry
from tracing.trace_listing import COLUMNS, MIN_WIDTH, cells, column_widths, print_programs

T0_NS = 1_750_000_000 * 10**9
LONG_IDS = ("default/8dc5dfc029b241d1b49400170b21a4a2", "default/cf1bed968e264698b7230159e683106e")
SHORT_IDS = ("prog-fanout-7f3a", "globex/late")


def entry(program_id: str, n: int = 0) -> ProgramEntry:
    tenant = program_id.split("/")[0] if "/" in program_id else "acme"
    return ProgramEntry(program_id=program_id, tenant=tenant, program_class="fanout",
                        end_reason="ended" if n else "", start_unix_ns=T0_NS + n * 10**9,
                        duration_s=12.5 + n, calls=5 + n, failed_calls=n, cached_calls=1)


def listed(entries: list[ProgramEntry], width: int | None) -> list[str]:
    console = Console(record=True, width=width or 100_000, file=io.StringIO())
    print_programs(entries, console, width)
    return console.export_text().splitlines()


@pytest.mark.parametrize("ids", [LONG_IDS, SHORT_IDS, (LONG_IDS[0] + "-and-then-some" * 4,)])
@pytest.mark.parametrize("width", [None, *range(MIN_WIDTH, 161, 3)])
def test_every_id_whole_and_every_value_shown(ids: tuple[str, ...], width: int | None) -> None:
    """Whatever the width: each id whole on a line (a line wider than the width is an id
    alone, for the terminal to wrap), the other values of its program as words."""
    entries = [entry(pid, n) for n, pid in enumerate(ids)]
    lines = listed(entries, width)
    words = " ".join(lines).split()
    for e in entries:
        assert e.program_id in words
        row = cells(e)
        for value in row[1:]:
            assert all(word in words for word in value.split()), (value, lines)
    if width is not None:
        assert all(len(line.rstrip()) <= width or line.strip() in ids for line in lines), lines


def test_a_table_at_its_natural_width_when_it_fits() -> None:
    entries = [entry(LONG_IDS[0]), entry(SHORT_IDS[0], 1)]
    lines = listed(entries, None)
    assert lines[0].split()[:2] == ["program", "tenant"]
    assert lines[1].split() == [LONG_IDS[0], "default", "fanout", "2025-06-15", "15:06:40",
                                "12.50s", "5", "0", "0", "1", "open"]
    assert listed(entries, len(lines[0].rstrip()) + 10) == lines  # the same where it fits


def test_narrower_the_other_columns_wrap_at_words_then_the_ids_get_lines_of_their_own() -> None:
    entries = [entry(SHORT_IDS[0]), entry(SHORT_IDS[1], 1)]
    lines = listed(entries, 96)  # the table, its start dates and times on two lines
    assert [line.split()[0] for line in lines if line.split()[0] in SHORT_IDS] == list(SHORT_IDS)
    assert any(line.split() == ["15:06:40"] for line in lines)
    lines = listed(entries, 94)  # no table fits: an id, then its details beneath
    assert lines[0] == SHORT_IDS[0]
    assert lines[1].startswith("  tenant acme  class fanout  started 2025-06-15 15:06:40 UTC")


def test_column_widths() -> None:
    rows = [cells(entry(LONG_IDS[0]))]
    natural = column_widths(rows, None)
    assert natural is not None and natural[0] == len(LONG_IDS[0]) and len(natural) == len(COLUMNS)
    assert column_widths(rows, sum(natural) + 2 * (len(COLUMNS) - 1)) == natural
    narrow = column_widths(rows, sum(natural) + 2 * (len(COLUMNS) - 1) - 1)
    assert narrow is not None and narrow[0] == natural[0] and sum(narrow) == sum(natural) - 1
    assert column_widths(rows, 80) is None  # a 40-character id and eight columns: no table
