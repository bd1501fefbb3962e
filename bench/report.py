"""Reports of a sweep: the Markdown table, the PNG plots, and the README's results section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.sweep import capacity_ratios, policies_in

README_BEGIN = "<!-- bench:begin -->"
README_END = "<!-- bench:end -->"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _times(x: float | None) -> str:
    """A ratio: `1.23x`, or n/a."""
    return "n/a" if x is None else f"{x:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    ratios = capacity_ratios(results)
    st = results["steady_state"]
    unloaded = results["unloaded"]
    lines = [
        f"**SIMULATED** (virtual-time cluster simulator, sim engines): workload `{results['workload']}`, "
        f"{results['engines']} engines of `{results['profile']}`, seed {results['seed']}, planner "
        f"budget per engine: {_budgets(results)}.{_bare(results)}",
        "",
        f"Steady state: {_arrivals(results)} arrivals that keep coming; the programs arriving in "
        f"[{st['window_s'][0]:.0f} s, {st['window_s'][1]:.0f} s) are measured; a run ends when "
        f"they have all finished or at {st['horizon_s']:.0f} s (settling and horizon from the "
        f"unloaded p99 program latency, {st['unloaded_p99_s']:.1f} s). A run is stable when "
        "every measured program finished, programs finished during the window at >= 0.95x "
        "the rate they arrived, and the backlog grew over the window by at most 2 x the "
        "square root of its arrivals (docs/bench/method.md).",
        "",
        f"Capacity: the highest stable rate (interpolated) whose mean normalized latency <= "
        f"{results['slo_factor']:g} x the unloaded `fcfs+round_robin` "
        f"({unloaded['normalized_latency_s_per_token_mean'] * 1000:.2f} ms/token"
        + ("; **its engines were "
           f"{unloaded['engine_utilization']:.0%} busy: it queued, and this limit is loose**"
           if unloaded.get("loaded") else "")
        + "). Sustained: the highest stable rate swept, with every one below it stable, "
        "whatever its latency.",
        "",
        f"Prefix hit rate of one engine with an unbounded cache (the most reuse possible): "
        f"{results['reference_prefix_hit_rate']:.3f}. Planner queue s: a call's wait from ready "
        "to sent to an engine (a bare router, or no budget, sends at once: its calls wait in "
        "the engines' queues, in the latency but not in this column).",
        "",
        "| policy | capacity (programs/s) | vs fcfs+round_robin | sustained (programs/s) | "
        + " | ".join(f"capacity `{c}`" for c in _classes(results)) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(_classes(results)),
    ]
    for policy in policies_in(results):
        cap = results["capacity"][policy]
        more = "" if results["capacity_bounded"][policy] else ">= "
        per_class = results["capacity_per_class"][policy]
        lines.append(f"| `{policy}` | {more}{cap:.2f} | {more}{_fmt(ratios.get(policy))}x | "
                     f"{results['sustained_throughput'][policy]:g} | "
                     + " | ".join(f"{per_class.get(c, 0.0):.2f}" for c in _classes(results)) + " |")
    lines += [
        "",
        "| policy | rate | stable | done | mean s | p50 s | p99 s | norm ms/tok | prefix hit "
        "| deadlines | planner queue s (mean) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results["runs"], key=lambda r: (r["rate"], r["policy"])):
        lines.append(_row(r))
    lines += _point(results.get("at_80pct_of_baseline_capacity"), _classes(results))
    return "\n".join(lines) + "\n"


def _classes(results: dict[str, Any]) -> list[str]:
    return sorted(results["unloaded"]["per_class_normalized_latency_s_per_token_mean"])


def _bare(results: dict[str, Any]) -> str:
    bare = results.get("bare_policies") or []
    if not bare:
        return ""
    return (" Run as bare routers, with no planner budget (each call sent on as it comes, "
            "to wait in the engine's own queue), program admission or tenant shares (as a "
            "Kubernetes Service or SGLang's router): "
            + ", ".join(f"`{p}`" for p in bare) + ".")


def _arrivals(results: dict[str, Any]) -> str:
    """The arrival process, and what produced the run where it says (files written before
    session 71 name neither: their arrivals were Poisson unless their spec said otherwise)."""
    spec = results.get("spec")
    if not isinstance(spec, dict):
        return "Poisson"
    return (f"{spec['arrival']['process']} (spec sha256 {results['spec_sha256'][:12]}, "
            f"code {results.get('code_commit') or 'unknown'})")


def _budgets(results: dict[str, Any]) -> str:
    bare = set(results.get("bare_policies") or ())
    per = {p: b for p, b in (results.get("budget_per_policy") or {}).items() if p not in bare}
    if not per or set(per.values()) == {None}:
        return ("none (the planner grants each call at once; the engines' own "
                "max_running_requests and queues do the rest)")
    per = {p: ("none" if b is None else b) for p, b in per.items()}
    if len(set(per.values())) <= 1:
        return f"{next(iter(per.values()))} calls"
    return ", ".join(f"`{p}` {b}" for p, b in per.items())


def _row(r: dict[str, Any]) -> str:
    lat = r["program_latency_s"]
    stable = "yes" if r.get("stable") else "**no**"
    return (f"| `{r['policy']}` | {r['rate']:g} | {stable} | {r['completed']}/{r['programs']} | "
            f"{lat['mean']:.2f} | "
            f"{lat['p50']:.2f} | {lat['p99']:.2f} | "
            f"{r['normalized_latency_s_per_token']['mean'] * 1000:.2f} | {r['prefix_hit_rate']:.3f} | "
            f"{_fmt(r['deadline_attainment'], 3)} | {r['call_queue_s']['mean']:.2f} |")


def _point(point: dict[str, Any] | None, classes: list[str]) -> list[str]:
    """The runs at 80% of the baseline's capacity, where the latency targets are stated."""
    if not point:
        return []
    lines = ["", f"At {point['load_of_baseline_capacity']:.0%} of `fcfs+round_robin`'s capacity "
             f"({point['rate']:.2f} programs/s):", "",
             "| policy | rate | stable | done | mean s | p50 s | p99 s | norm ms/tok | prefix hit "
             "| deadlines | planner queue s (mean) | p99 vs fcfs+round_robin | mean vs clairvoyant |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in point["runs"]:
        p = r["policy"]
        lines.append(_row(r) + f" {_times(point['p99_vs_baseline'].get(p))} | "
                     f"{_times(point['mean_vs_clairvoyant'].get(p))} |")
    lines += ["", "Mean normalized latency per class there (ms/token):", "",
              "| policy | " + " | ".join(f"`{c}`" for c in classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for r in point["runs"]:
        per = r["per_class"]
        lines.append(f"| `{r['policy']}` | " + " | ".join(
            f"{per[c]['normalized_latency_s_per_token']['mean'] * 1000:.2f}" if c in per else "n/a"
            for c in classes) + " |")
    return lines


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("latency_vs_rate.png", "mean program latency (s)", lambda r: r["program_latency_s"]["mean"], True),
        ("p99_vs_rate.png", "p99 program latency (s)", lambda r: r["program_latency_s"]["p99"], True),
        ("normalized_latency_vs_rate.png", "mean normalized latency (s/token)",
         lambda r: r["normalized_latency_s_per_token"]["mean"], True),
        ("prefix_hit_rate.png", "prefix hit rate", lambda r: r["prefix_hit_rate"], False),
    ]
    if any(r["deadline_attainment"] is not None for r in results["runs"]):
        panels.append(("deadline_attainment.png", "deadline attainment",
                       lambda r: r["deadline_attainment"] or 0.0, False))
    files = []
    for name, ylabel, metric, log in panels:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for policy in policies_in(results):
            runs = sorted((r for r in results["runs"] if r["policy"] == policy), key=lambda r: r["rate"])
            (line,) = ax.plot([r["rate"] for r in runs], [metric(r) for r in runs], label=policy)
            # an unstable run hollow: its latencies are its finished programs' only
            for hollow in (False, True):
                at = [r for r in runs if r["stable"] is not hollow]
                ax.plot([r["rate"] for r in at], [metric(r) for r in at], linestyle="none",
                        marker="o", color=line.get_color(),
                        markerfacecolor="none" if hollow else line.get_color())
        if name == "normalized_latency_vs_rate.png":
            limit = results["slo_factor"] * results["unloaded"]["normalized_latency_s_per_token_mean"]
            ax.axhline(limit, color="grey", linestyle="--", linewidth=1, label="capacity limit")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("program arrival rate (programs/s); hollow: unstable run")
        ax.set_ylabel(ylabel)
        ax.set_title(f"SIMULATED: {results['workload']}, {results['engines']} x {results['profile']}",
                     fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, metadata={"Software": None})  # no timestamps: same results, same bytes
        plt.close(fig)
        files.append(path)
    return files


def update_readme(readme: Path, results: dict[str, Any], out: Path) -> None:
    """Replaces the README section between the bench markers with the latest results."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_BEGIN} ... {README_END} section")
    rel = os.path.relpath(out, readme.parent)
    body = (f"{README_BEGIN}\n{markdown(results)}\n![latency vs rate]({rel}/latency_vs_rate.png)\n"
            f"{README_END}")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + body + tail)
