"""Run summaries and capacity, in the results.json shape of ../shared/workload-spec.md."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from bench.cluster import SimRun


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


def summarize(run: SimRun, policy: str, rate: float) -> dict[str, Any]:
    done = [o for o in run.outcomes if o.finished >= 0]
    latency = [o.finished - o.plan.arrival for o in done]
    normalized = [(o.finished - o.plan.arrival) / max(1, o.plan.output_tokens) for o in done]
    with_deadline = [o for o in run.outcomes if o.plan.deadline_s is not None]
    met = [o for o in with_deadline
           if o.finished >= 0 and o.finished - o.plan.arrival <= (o.plan.deadline_s or 0.0)]
    prompt = sum(c.prompt_tokens for c in run.calls)
    cached = sum(c.cached_tokens for c in run.calls)
    first = min((o.plan.arrival for o in run.outcomes), default=0.0)
    span = max((o.finished for o in done), default=0.0) - first
    tenants: dict[str, list[float]] = {}
    for o, lat in zip(done, latency, strict=True):
        tenants.setdefault(o.plan.tenant, []).append(lat)
    queue = [c.dispatched - c.ready for c in run.calls if c.dispatched >= 0]
    return {
        "policy": policy, "rate": rate, "programs": len(run.outcomes), "completed": len(done),
        "failed": len(run.outcomes) - len(done),
        "program_latency_s": {"mean": _r(_mean(latency)), "p50": _r(percentile(latency, 0.5)),
                              "p95": _r(percentile(latency, 0.95)),
                              "p99": _r(percentile(latency, 0.99))},
        "normalized_latency_s_per_token": {"mean": _r(_mean(normalized)),
                                           "p95": _r(percentile(normalized, 0.95))},
        "throughput_programs_per_s": _r(len(done) / span) if span > 0 else 0.0,
        "prefix_hit_rate": _r(cached / prompt) if prompt else 0.0,
        "deadline_attainment": _r(len(met) / len(with_deadline)) if with_deadline else None,
        "per_tenant": {t: {"completed": len(v), "program_latency_s": {
            "mean": _r(_mean(v)), "p99": _r(percentile(v, 0.99))}} for t, v in sorted(tenants.items())},
        "calls": len(run.calls),
        "call_queue_s": {"mean": _r(_mean(queue)), "p99": _r(percentile(queue, 0.99))},
        "engine_utilization": _r(sum(run.engine_busy_s) / (len(run.engine_busy_s) * span))
        if span > 0 and run.engine_busy_s else 0.0,
        "sim_wall_s": round(run.wall_s, 3), "simulated_s": round(run.simulated_s, 3),
    }


def capacity(points: Sequence[tuple[float, float]], limit: float) -> tuple[float, bool]:
    """The highest rate at which `metric <= limit`, interpolated linearly between the sweep's
    rates. Returns (rate, bounded): bounded is False when even the highest rate is within
    the limit (capacity is at least that), and the rate is 0.0 when even the lowest is not.
    """
    pts = sorted(points)
    if not pts or pts[0][1] > limit:
        return 0.0, True
    for (r0, m0), (r1, m1) in itertools.pairwise(pts):
        if m1 > limit:
            return r0 + (r1 - r0) * (limit - m0) / (m1 - m0), True
    return pts[-1][0], False
