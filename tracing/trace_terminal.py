"""The terminal waterfall of one program (`ostinato trace show`), drawn with rich.

One row per call, ordered by start, on a time axis shared by all rows: queue wait, prefill
and decode in their own glyph and colour, time in no phase (the gateway's own work) as a
thin line, answers from the gateway's cache as `=`. Calls on the critical path are starred
and bold; failed calls are red and marked `!`, cancelled ones `x`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from tracing.trace_view import DECODE, PREFILL, QUEUE, CallTimeline, ProgramTimeline

OTHER = "other"
CACHED = "cached"
GLYPHS = {QUEUE: ("░", "yellow"), PREFILL: ("▒", "magenta"), DECODE: ("█", "green"),
          OTHER: ("─", "bright_black"), CACHED: ("=", "cyan")}
LEGEND = ((QUEUE, "queue"), (PREFILL, "prefill"), (DECODE, "decode"), (OTHER, "gateway"),
          (CACHED, "cached"))
_MIN_BAR = 16


def fmt_s(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10.0:
        return f"{seconds:.2f}s"
    return f"{seconds:.1f}s"


def _fit(value: str, width: int) -> str:
    return value if len(value) <= width else value[: max(width - 1, 0)] + "…"


@dataclass(frozen=True)
class _Columns:
    call: int
    thread: int
    worker: int
    cache: int = 5
    tokens: int = 11
    time: int = 6

    @property
    def fixed(self) -> int:  # everything left of the bar: the mark, the columns, their gaps
        return 2 + self.call + self.thread + self.worker + self.cache + self.tokens + self.time + 7


_NARROW = _Columns(call=10, thread=6, worker=8)  # the most _columns narrows them to
# the narrowest width whose rows are drawn whole: the narrowed columns and half a bar
MIN_WIDTH = _NARROW.fixed + _MIN_BAR // 2


def _columns(timeline: ProgramTimeline, width: int) -> _Columns:
    """Columns as wide as their longest value (capped); narrower where the bar needs room."""
    def longest(values: list[str], floor: int, cap: int) -> int:
        return min(max([floor, *map(len, values)]), cap)

    calls = timeline.calls
    natural = _Columns(call=longest([c.call_id for c in calls], 4, 16),
                       thread=longest([c.thread for c in calls], 6, 10),
                       worker=longest([c.worker for c in calls], 6, 12))
    if width - natural.fixed >= _MIN_BAR:
        return natural
    return _Columns(min(natural.call, _NARROW.call), min(natural.thread, _NARROW.thread),
                    min(natural.worker, _NARROW.worker))


def _cache_label(call: CallTimeline) -> str:
    return {"semantic": "sem"}.get(call.cache_hit, call.cache_hit or "-")


def bar_cells(call: CallTimeline, duration_s: float, width: int) -> list[str]:
    """The bar of one call: for each of `width` cells, the kind that fills most of its time
    ("" where the call is not running), at least one cell per call."""
    cells = [""] * width
    if width <= 0 or duration_s <= 0:
        return cells
    scale = width / duration_s
    first = min(max(int(call.start_s * scale), 0), width - 1)
    last = min(max(math.ceil(call.end_s * scale), first + 1), width)
    for i in range(first, last):
        lo, hi = i / scale, (i + 1) / scale
        inside = max(min(hi, call.end_s) - max(lo, call.start_s), 0.0)
        share = {OTHER: inside}
        for p in call.phases:
            overlap = max(min(hi, p.end_s) - max(lo, p.start_s), 0.0)
            share[p.kind] = share.get(p.kind, 0.0) + overlap
            share[OTHER] -= overlap
        kind = max(share, key=lambda k: share[k])
        cells[i] = CACHED if kind == OTHER and call.cached else kind
    return cells


def _axis(duration_s: float, width: int) -> str:
    """Time labels at 0, the end, the middle and the quarters, as many as fit apart."""
    out = [" "] * width
    taken: list[tuple[int, int]] = []
    for q in (0, 4, 2, 1, 3):
        label = fmt_s(duration_s * q / 4)
        at = round(width * q / 4) - (len(label) if q == 4 else len(label) // 2 if q else 0)
        at = min(max(at, 0), width - len(label))
        if at < 0 or any(at <= hi and at + len(label) >= lo for lo, hi in taken):
            continue
        out[at:at + len(label)] = label
        taken.append((at, at + len(label)))
    return "".join(out)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _title(t: ProgramTimeline) -> Text:
    """The header's first line: the program (its id, class, tenant), how long, how it ended."""
    text = Text()
    text.append("program ", style="dim").append(t.program_id, style="bold")
    if t.program_class:
        text.append(f" ({t.program_class})")
    text.append("  tenant ", style="dim").append(t.tenant or "?")
    text.append("  ").append(fmt_s(t.duration_s), style="bold")
    text.append(f"  {t.end_reason}" if t.end_reason else "  (no program span: open, or on another gateway)",
                style="dim")
    return text


def _header(t: ProgramTimeline) -> Text:
    """Below the title: the calls, the critical path, the legend."""
    text = Text()
    text.append(f"{_plural(len(t.calls), 'call')}, {t.cached_calls} cached, {t.failed_calls} failed"
                + (f", {t.cancelled_calls} cancelled" if t.cancelled_calls else ""))
    text.append(f"   critical path: {_plural(len(t.critical_path), 'call')}, "
                f"{fmt_s(t.critical_path_s)} in calls")
    text.append("\n")
    for kind, label in LEGEND:
        glyph, style = GLYPHS[kind]
        text.append(glyph, style=style).append(f" {label}  ")
    text.append("\n")  # (on one line the legend took 89 columns: 80 wrapped it mid-way)
    text.append("*", style="bold").append(" critical path  ").append("!", style="red").append(
        " failed  ").append("x", style="yellow").append(" cancelled")
    return text


def _row(call: CallTimeline, cols: _Columns, duration_s: float, bar: int) -> Text:
    row_style = "bold" if call.on_critical_path else ""
    text = Text(style=row_style)
    text.append("*" if call.on_critical_path else " ", style="bold")
    text.append("!" if call.failed else "x" if call.cancelled else " ",
                style="bold red" if call.failed else "yellow")
    tokens = f"{call.tokens_in}/{call.tokens_out}"
    for value, width, style, right in (
            (call.call_id, cols.call, "red" if call.failed else "", False),
            (call.thread, cols.thread, "", False), (call.worker or "-", cols.worker, "", False),
            (_cache_label(call), cols.cache, "cyan" if call.cached else "", False),
            (tokens, cols.tokens, "", True), (fmt_s(call.duration_s), cols.time, "", True)):
        cell = _fit(value, width)
        text.append((cell.rjust(width) if right else cell.ljust(width)) + " ", style=style)
    for kind in bar_cells(call, duration_s, bar):
        glyph, style = GLYPHS[kind] if kind else (" ", "")
        text.append(glyph, style=style)
    return text


def render(timeline: ProgramTimeline, console: Console) -> None:
    """Prints the program's header, legend and one waterfall row per call."""
    cols = _columns(timeline, console.width)
    bar = max(console.width - cols.fixed, _MIN_BAR // 2)
    title = _title(timeline)
    if max(map(len, title.plain.split())) > console.width:  # an id wider than the terminal:
        console.print(title, soft_wrap=True)  # whole, for the terminal to wrap (never cut)
    else:
        console.print(title, overflow="ellipsis")  # at words
    console.print(_header(timeline), overflow="ellipsis")
    heads = Text("  ", style="dim")
    for name, width, right in (("call", cols.call, False), ("thread", cols.thread, False),
                               ("worker", cols.worker, False), ("cache", cols.cache, False),
                               ("in/out tok", cols.tokens, True), ("time", cols.time, True)):
        heads.append((name.rjust(width) if right else name.ljust(width)) + " ")
    heads.append(_axis(timeline.duration_s, bar))
    console.print(heads, no_wrap=True, overflow="crop")
    for call in timeline.calls:
        console.print(_row(call, cols, timeline.duration_s, bar), no_wrap=True, overflow="crop")
    if timeline.critical_path:
        console.print(Text("critical path: ", style="dim") + Text(" → ".join(timeline.critical_path)))
    for call in timeline.calls:
        if call.failed:
            message = call.status_message or "error"
            console.print(Text(f"! {call.call_id}: ", style="bold red") + Text(message))
