"""Run summaries and capacity, in the results.json shape of ../shared/workload-spec.md."""

from __future__ import annotations

import itertools
import math
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.sim_run import ProgramOutcome, SimRun


def code_commit() -> str | None:
    """The commit of the code that ran (its checkout's HEAD, "+dirty" with changes), None
    outside a git checkout: results name what produced them."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 when empty."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _r(x: float) -> float:
    return round(x, 6)


STABLE_COMPLETION_RATIO = 0.95  # workload-spec.md: completions over the window / arrivals
# ... and the backlog (programs arrived, not finished) may not grow over the window by more
# than this many standard deviations of Poisson arrivals (sqrt of the window's arrivals):
# the ratio alone passed a queue growing by 5% of arrivals (bench review 2026-12-07: one
# engine at 1.049x its service rate read stable; `mixed`'s `default` at 32/s grew its
# backlog 880 -> 1,181 programs over the window and read stable with seed 5, not with 6).
BACKLOG_SIGMAS = 2.0


def backlog_limit(arrivals: int) -> float:
    """How much the backlog may grow over a window of `arrivals` in a stable run."""
    return BACKLOG_SIGMAS * math.sqrt(arrivals)


def stable_window(arrivals: int, completions: int) -> bool:
    """Whether a window that `arrivals` programs arrived in and `completions` finished in
    (measured or not) kept up: workload-spec.md's ratio, and the backlog's growth
    (arrivals - completions) within Poisson noise."""
    return completions >= STABLE_COMPLETION_RATIO * arrivals and \
        arrivals - completions <= backlog_limit(arrivals)


def summarize(run: SimRun, policy: str, rate: float) -> dict[str, Any]:
    """The run's figures over its measured programs (every program of a finite run)."""
    measured = [o for o in run.outcomes if o.measured]
    done = [o for o in measured if o.finished >= 0]
    latency = [o.finished - o.plan.arrival for o in done]
    normalized = [(o.finished - o.plan.arrival) / max(1, o.plan.output_tokens) for o in done]
    with_deadline = [o for o in measured if o.plan.deadline_s is not None]
    met = [o for o in with_deadline
           if o.finished >= 0 and o.finished - o.plan.arrival <= (o.plan.deadline_s or 0.0)]
    measured_ids = {o.plan.index for o in measured}
    calls = [c for c in run.calls if c.program in measured_ids]
    prompt = sum(c.prompt_tokens for c in calls)
    cached = sum(c.cached_tokens for c in calls)
    first = min((o.plan.arrival for o in measured), default=0.0)
    span = max((o.finished for o in done), default=0.0) - first
    tenants: dict[str, list[float]] = {o.plan.tenant: [] for o in measured}
    for o, lat in zip(done, latency, strict=True):
        tenants[o.plan.tenant].append(lat)
    measured_by_tenant = Counter(o.plan.tenant for o in measured)
    queue = [c.dispatched - c.ready for c in calls if c.dispatched >= 0]
    busy_span = run.simulated_s - min((o.plan.arrival for o in run.outcomes), default=0.0)
    out: dict[str, Any] = {
        "policy": policy, "rate": rate, "programs": len(measured), "completed": len(done),
        "failed": len(measured) - len(done),
        "program_latency_s": _stats(latency),
        "normalized_latency_s_per_token": {"mean": _r(_mean(normalized)),
                                           "p95": _r(percentile(normalized, 0.95)),
                                           "p99": _r(percentile(normalized, 0.99))},
        "throughput_programs_per_s": _r(len(done) / span) if span > 0 else 0.0,
        "prefix_hit_rate": _r(cached / prompt) if prompt else 0.0,
        "deadline_attainment": _r(len(met) / len(with_deadline)) if with_deadline else None,
        "per_tenant": {t: {"measured": measured_by_tenant[t], "completed": len(v),
                           "program_latency_s": {
            "mean": _r(_mean(v)), "p99": _r(percentile(v, 0.99))}} for t, v in sorted(tenants.items())},
        "per_class": _per_class(measured),
        "calls": len(calls),
        "call_queue_s": {"mean": _r(_mean(queue)), "p99": _r(percentile(queue, 0.99))},
        "engine_utilization": _r(sum(run.engine_busy_s) / (len(run.engine_busy_s) * busy_span))
        if busy_span > 0 and run.engine_busy_s else 0.0,
        "sim_wall_s": round(run.wall_s, 3), "simulated_s": round(run.simulated_s, 3),
    }
    if run.steady is not None:
        out.update(_steady(run, measured, done))
        # finished programs per second of the window (the drain after it is no throughput)
        out["throughput_programs_per_s"] = out["window_completions_per_s"]
    return out


def _stats(latency: Sequence[float]) -> dict[str, float]:
    return {"mean": _r(_mean(latency)), "p50": _r(percentile(latency, 0.5)),
            "p95": _r(percentile(latency, 0.95)), "p99": _r(percentile(latency, 0.99))}


def _per_class(measured: Sequence[ProgramOutcome]) -> dict[str, Any]:
    by: dict[str, list[ProgramOutcome]] = {}
    for o in measured:
        by.setdefault(o.plan.klass.name, []).append(o)
    out = {}
    for name, outcomes in sorted(by.items()):
        done = [o for o in outcomes if o.finished >= 0]
        lat = [o.finished - o.plan.arrival for o in done]
        norm = [(o.finished - o.plan.arrival) / max(1, o.plan.output_tokens) for o in done]
        out[name] = {"measured": len(outcomes), "completed": len(done),
                     "program_latency_s": {"mean": _r(_mean(lat)), "p99": _r(percentile(lat, 0.99))},
                     "normalized_latency_s_per_token": {"mean": _r(_mean(norm)),
                                                        "p99": _r(percentile(norm, 0.99))}}
    return out


def _steady(run: SimRun, measured: Sequence[ProgramOutcome],
            done: Sequence[ProgramOutcome]) -> dict[str, Any]:
    """workload-spec.md's steady-state fields. Stable: every measured program finished by the
    horizon, and programs (measured or not) finished during the window at >= 0.95 times the
    rate at which the measured ones arrived (the drawn arrivals, not the nominal rate), the
    backlog growing by no more than noise (`stable_window`)."""
    steady = run.steady
    assert steady is not None
    start, end = steady.window
    length = end - start
    completions = sum(1 for o in run.outcomes if start <= o.finished < end)
    arrivals_per_s = len(measured) / length
    completions_per_s = completions / length
    stable = len(done) == len(measured) and stable_window(len(measured), completions)
    return {"window_s": [_r(start), _r(end)], "horizon_s": _r(steady.horizon),
            "measured_programs": len(measured), "measured_completed": len(done),
            "window_arrivals_per_s": _r(arrivals_per_s),
            "window_completions_per_s": _r(completions_per_s),
            "window_backlog_growth": len(measured) - completions,
            "window_backlog_limit": _r(backlog_limit(len(measured))), "stable": stable}


def capacity(points: Sequence[tuple[float, float, bool]], limit: float) -> tuple[float, bool]:
    """The highest rate that is stable with `metric <= limit`, from (rate, metric, stable)
    points. Walking up the rates, the first point that fails ends the search: if it failed
    on latency alone (stable), capacity is interpolated linearly between it and the last
    passing rate; if it was unstable, capacity is the last passing rate (no interpolation
    into a rate the cluster cannot sustain). Returns (rate, bounded): bounded is False when
    even the highest rate passes (capacity is at least that), and the rate is 0.0 when even
    the lowest fails.
    """
    pts = sorted(points)
    if not pts or not pts[0][2] or pts[0][1] > limit:
        return 0.0, True
    for (r0, m0, _), (r1, m1, ok1) in itertools.pairwise(pts):
        if not ok1:
            return r0, True
        if m1 > limit:
            return r0 + (r1 - r0) * (limit - m0) / (m1 - m0), True
    return pts[-1][0], False


def sustained_throughput(points: Sequence[tuple[float, bool]]) -> float:
    """The highest rate of a sweep stable, whatever its latency, with every rate below it
    stable too, walking up as `capacity` does (0.0: not the lowest): a stable rate above an
    unstable one is chance, not throughput (bench review 2026-12-08 F3)."""
    best = 0.0
    for rate, stable in sorted(points):
        if not stable:
            break
        best = rate
    return best
