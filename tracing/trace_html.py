"""`ostinato trace show --html OUT`: the program's timeline as one self-contained page.

Everything is inline (CSS, script, the timeline as JSON) and nothing is fetched, so the page
opens offline. The script draws at load: one element per call carrying `data-call-id`, its
phases as child elements (`data-phase`), the axis ticks, and hover titles with the call's
attributes.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from tracing.trace_view import ProgramTimeline

_CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 16px; margin: 0 0 4px; } code { font-size: 13px; }
#summary, #legend { margin: 4px 0; color: #444; }
#legend span { margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 14px; height: 10px; vertical-align: middle; margin-right: 4px; }
#waterfall { position: relative; }
.row { display: flex; align-items: center; height: 22px; border-bottom: 1px solid #f0f0f0; }
.row:hover { background: #f6f8ff; }
.cell { flex: none; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; padding-right: 8px; }
.mark { width: 18px; } .id { width: 170px; } .thread { width: 70px; } .worker { width: 90px; }
.cache { width: 60px; } .tokens { width: 90px; text-align: right; } .dur { width: 60px; text-align: right; }
.track { position: relative; flex: 1; height: 100%; margin-right: 36px; }
.axis { height: 26px; color: #666; border-bottom: 1px solid #ccc; }
.tick { position: absolute; top: 0; bottom: 0; border-left: 1px solid #ccc; padding-left: 3px;
        font-size: 11px; }
.grid { position: absolute; top: 0; bottom: 0; border-left: 1px dashed #eee; pointer-events: none; }
.span { position: absolute; top: 9px; height: 4px; background: #bbb; min-width: 2px; }
.phase { position: absolute; top: -5px; height: 14px; min-width: 1px; }
.queue { background: #e0a800; } .prefill { background: #b04fc9; } .decode { background: #2e9e44; }
.gateway { background: #bbb; } .cached-swatch, .call.cached .span { background: #1fa2c4; }
.call.critical { font-weight: bold; } .call.critical .span { outline: 2px solid #d33; outline-offset: 6px; }
.call.failed .id { color: #c00; } .critical-mark { color: #d33; } .failed-mark { color: #c00; }
.cancelled-mark { color: #b80; }
"""

_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("timeline-data").textContent);
  const total = data.duration_s > 0 ? data.duration_s : 1;
  const pct = (s) => (100 * Math.min(Math.max(s, 0), total) / total) + "%";
  const fmt = (s) => s === 0 ? "0s" : s < 1 ? Math.round(s * 1000) + "ms"
    : s < 10 ? s.toFixed(2) + "s" : s.toFixed(1) + "s";
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const plural = (n, w) => n + " " + w + (n === 1 ? "" : "s");
  document.getElementById("summary").textContent = [
    "tenant " + (data.tenant || "?"), fmt(data.duration_s),
    data.end_reason || "no program span (open, or on another gateway)",
    plural(data.calls.length, "call") + ", " + data.cached_calls + " cached, " +
      data.failed_calls + " failed" +
      (data.cancelled_calls ? ", " + data.cancelled_calls + " cancelled" : ""),
    "critical path " + data.critical_path.join(" \u2192 ") + " (" + fmt(data.critical_path_s) + " in calls)",
  ].join(" \u00b7 ");

  // nice tick step: 1, 2 or 5 times a power of ten, about six ticks
  const raw = total / 6, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let i = 0; i * step <= total * (1 + 1e-9); i++) ticks.push(i * step);

  const box = document.getElementById("waterfall");
  const head = el("div", "row axis");
  for (const [cls, text] of [["mark", ""], ["id", "call"], ["thread", "thread"], ["worker", "worker"],
      ["cache", "cache"], ["tokens", "in/out tok"], ["dur", "time"]]) {
    head.append(el("div", "cell " + cls, text));
  }
  const axis = el("div", "track");
  for (const t of ticks) {
    const tick = el("div", "tick", fmt(t));
    tick.style.left = pct(t);
    axis.append(tick);
  }
  head.append(axis);
  box.append(head);

  for (const c of data.calls) {
    const row = el("div", "row call" + (c.on_critical_path ? " critical" : "") +
      (c.cached ? " cached" : "") + (c.failed ? " failed" : "") +
      (c.cancelled ? " cancelled" : ""));
    row.setAttribute("data-call-id", c.call_id);
    const info = [c.name, "call " + c.call_id, "thread " + c.thread,
      "parents " + (c.parents.join(", ") || "none"), "worker " + (c.worker || "none"),
      "cache " + (c.cache_hit || "not recorded"),
      "tokens in " + c.tokens_in + ", out " + c.tokens_out + ", cached " + c.tokens_cached,
      "finish " + (c.finish_reason || "-"),
      "status " + c.status + (c.status_message ? ": " + c.status_message : ""),
      fmt(c.start_s) + " \u2192 " + fmt(c.end_s) + " (" + fmt(c.end_s - c.start_s) + ")"];
    for (const [k, v] of Object.entries(c.details)) info.push(k + " " + v);
    if (c.on_critical_path) info.push("on the critical path");
    row.title = info.join("\n");
    const mark = el("div", "cell mark");
    if (c.on_critical_path) mark.append(el("span", "critical-mark", "\u2605"));
    if (c.failed) mark.append(el("span", "failed-mark", "!"));
    if (c.cancelled) mark.append(el("span", "cancelled-mark", "x"));
    row.append(mark);
    for (const [cls, text] of [["id", c.call_id], ["thread", c.thread], ["worker", c.worker || "-"],
        ["cache", c.cache_hit === "semantic" ? "sem" : (c.cache_hit || "-")],
        ["tokens", c.tokens_in + "/" + c.tokens_out], ["dur", fmt(c.end_s - c.start_s)]]) {
      row.append(el("div", "cell " + cls, text));
    }
    const track = el("div", "track");
    for (const t of ticks) {
      const g = el("div", "grid");
      g.style.left = pct(t);
      track.append(g);
    }
    const span = el("div", "span");
    span.style.left = pct(c.start_s);
    span.style.width = "calc(" + pct(c.end_s) + " - " + pct(c.start_s) + ")";
    for (const p of c.phases) {
      const ph = el("div", "phase " + p.kind);
      ph.setAttribute("data-phase", p.kind);
      const len = Math.max(c.end_s - c.start_s, 1e-9);
      ph.style.left = (100 * (p.start_s - c.start_s) / len) + "%";
      ph.style.width = (100 * (p.end_s - p.start_s) / len) + "%";
      ph.title = p.kind + " " + fmt(p.end_s - p.start_s) + " (" + fmt(p.start_s) + " \u2192 " +
        fmt(p.end_s) + ")";
      span.append(ph);
    }
    track.append(span);
    row.append(track);
    box.append(row);
  }
  document.body.setAttribute("data-drawn-calls", String(data.calls.length));
})();
"""

_LEGEND = "".join(
    f'<span><i class="swatch {cls}"></i>{label}</span>'
    for cls, label in (("queue", "queue (planner)"), ("prefill", "prefill"), ("decode", "decode"),
                       ("gateway", "gateway / other"), ("cached-swatch", "answered from cache"))
) + ('<span><b class="critical-mark">\u2605</b> critical path</span>'
     '<span><b class="failed-mark">!</b> failed</span>'
     '<span><b class="cancelled-mark">x</b> cancelled</span>')


def timeline_json(t: ProgramTimeline) -> dict[str, Any]:
    """The page's data: the timeline as plain JSON values."""
    return {
        "program_id": t.program_id, "tenant": t.tenant, "program_class": t.program_class,
        "end_reason": t.end_reason, "has_program_span": t.has_program_span,
        "duration_s": t.duration_s, "critical_path": list(t.critical_path),
        "critical_path_s": t.critical_path_s, "cached_calls": t.cached_calls,
        "failed_calls": t.failed_calls, "cancelled_calls": t.cancelled_calls,
        "calls": [{
            "call_id": c.call_id, "name": c.name, "thread": c.thread, "parents": list(c.parents),
            "worker": c.worker, "cache_hit": c.cache_hit, "cached": c.cached, "tokens_in": c.tokens_in,
            "tokens_out": c.tokens_out, "tokens_cached": c.tokens_cached, "finish_reason": c.finish_reason,
            "status": c.status, "status_message": c.status_message, "start_s": c.start_s, "end_s": c.end_s,
            "failed": c.failed, "cancelled": c.cancelled,
            "on_critical_path": c.on_critical_path, "details": c.details,
            "phases": [{"kind": p.kind, "start_s": p.start_s, "end_s": p.end_s} for p in c.phases],
        } for c in t.calls],
    }


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` that could close it."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(t: ProgramTimeline) -> str:
    title = html.escape(f"program {t.program_id}" + (f" ({t.program_class})" if t.program_class else ""))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Ostinato {title}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>Ostinato {title}</h1>\n<div id=\"summary\"></div>\n<div id=\"legend\">{_LEGEND}</div>\n"
        "<div id=\"waterfall\"></div>\n<noscript>This page draws the timeline with JavaScript.</noscript>\n"
        f"<script type=\"application/json\" id=\"timeline-data\">{_script_json(timeline_json(t))}</script>\n"
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def write_html(timeline: ProgramTimeline, path: str | Path) -> None:
    """Writes the self-contained page of `timeline` to `path`."""
    Path(path).write_text(page(timeline), encoding="utf-8")
