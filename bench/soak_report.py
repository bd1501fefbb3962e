"""The soak's results as terminal tables (rich): outcomes, faults, duplicates, memory, checks."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    return table


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "0"


def print_report(r: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=max(Console().width, 150))  # the memory table is wide
    o = r["options"]
    shape = (f"{o['concurrency']} one-call callers at once" if o.get("one_call") else
             f"{o['concurrency']} programs at once ({o['calls_per_program']} calls each)")
    console.print(f"[bold]soak[/bold]: {r['calls']['total']} calls, {shape}, {o['workers']} workers, "
                  f"SIMULATED engines (time_scale {o['time_scale']}); {r['wall_s']} s, "
                  f"{r['calls_per_s']} calls/s")

    calls = _table("calls by outcome", "outcome", "calls")
    for outcome, n in r["calls"]["by_outcome"].items():
        calls.add_row(outcome, str(n))
    calls.add_row("no outcome (hung)", str(r["hung"]))
    console.print(calls)

    faults = _table("faults", "target", "at", "restart s", "failures during it",
                    "in flight / down / after", "error")
    for e in r["faults"]:
        during = r["failures_by_fault"].get(e["target"], {})
        phase = r["failures_by_phase"].get(e["target"], {})
        faults.add_row(e["target"], f"{e['at']:.0%}", f"{e['restart_s']:.1f}",
                       _counts(during),
                       " / ".join(str(phase.get(k, 0)) for k in ("in flight", "down", "after")),
                       e["error"][:60])
    faults.add_row("(no fault)", "", "", _counts(r["failures_by_fault"].get("none", {})), "", "")
    console.print(faults)

    dup = _table("duplicates and records", "measure", "value")
    for section in ("duplicates", "summaries", "records"):
        for k, v in r[section].items():
            if k != "mismatched_calls":
                dup.add_row(f"{section}.{k}", str(v))
    for k, v in r.get("one_call_records", {}).items():
        if k != "calls_in_two_programs_first":
            dup.add_row(f"one_call_records.{k}", str(v))
    for k, v in r["programs"].items():
        if v and k not in ("end_failed_programs", "end_failed_times"):
            dup.add_row(f"programs.{k}", str(v))
    console.print(dup)

    m_ = r["memory"]
    mem = _table(f"memory (VmRSS). flat: grew at most {m_.get('late_bound_kib', '-')} KiB per "
                 f"1000 calls from {m_.get('late_from', 0):.0%} of the calls to the end; first "
                 f"rule: at most {m_['bound_mib']} MiB from {m_['warmup']:.0%} after start",
                 "service", "procs", "base MiB", "end MiB", "growth MiB", "calls",
                 "KiB/1000", "first rule", "late MiB", "late calls", "late KiB/1000", "flat")
    verdict = {True: "yes", False: "[red]NO[/red]", None: "-"}
    for name, m in m_["services"].items():
        mem.add_row(name, str(m["processes"]), str(m.get("base_mib", "-")), str(m["end_mib"]),
                    str(m.get("growth_mib", "-")), str(m["window_calls"]),
                    str(m.get("kib_per_1000_calls", "-")),
                    verdict[m.get("warmup_flat", m.get("flat"))],
                    str(m.get("late_growth_mib", "-")), str(m.get("late_calls", "-")),
                    str(m.get("late_kib_per_1000_calls", "-")),
                    verdict[m["flat"] if "late_calls" in m else None])
    console.print(mem)
    for name, m in m_["services"].items():
        if "late_data_kib_per_1000_calls" in m:
            console.print(f"  {name}: the records it keeps grew {m['late_data_kib_per_1000_calls']}"
                          f" KiB per 1000 calls late (kept planner.ended_program_ttl_s by design);"
                          f" judged on RSS beyond them: "
                          f"{m['late_beyond_data_kib_per_1000_calls']} KiB per 1000 calls")
    console.print("  engines' KV pool in use at the end (a filling prefix cache grows RSS): "
                  + _counts(r.get("engine_kv_usage", {})))
    console.print("  answered calls by worker: " + _counts(r.get("ok_by_worker", {}))
                  + "; after the last fault: " + _counts(r.get("ok_by_worker_after_faults", {})))

    for name, ok in r["checks"].items():
        console.print(f"  {name}: " + ("[green]yes[/green]" if ok else "[red]NO[/red]"))
    if r["load_errors"]:
        console.print(f"[red]the load crashed[/red]: {r['load_errors']}")
