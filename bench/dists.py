"""Distributions of workload specs (workload-spec.md "Dist"): parsed, validated, sampled.

A Dist is a number (constant) or a mapping `{dist: const|uniform|exponential|lognormal|
geometric|zipf, ...}` with optional `min`/`max` clamps. Pure: sampling takes the caller's
`random.Random`, so a seed fixes every draw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass


class SpecError(ValueError):
    """An invalid workload spec; the message starts with the offending field's path."""


_PARAMS = {
    "const": {"value"},
    "uniform": {"low", "high"},
    "exponential": {"mean"},
    "lognormal": {"mean", "sigma"},
    "geometric": {"p", "mean"},
    "zipf": {"s", "max"},
}
_REQUIRED = {
    "const": {"value"}, "uniform": {"low", "high"}, "exponential": {"mean"},
    "lognormal": {"mean", "sigma"}, "geometric": set(), "zipf": {"s"},
}


@dataclass(frozen=True)
class Dist:
    kind: str
    mean: float = 0.0
    sigma: float = 0.0
    low: float = 0.0
    high: float = 0.0
    p: float = 0.0
    s: float = 0.0
    min: float | None = None
    max: float | None = None

    def sample(self, rng: random.Random) -> float:
        match self.kind:
            case "const":
                x = self.mean
            case "uniform":
                x = rng.uniform(self.low, self.high)
            case "exponential":
                x = rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0
            case "lognormal":  # `mean` is the distribution's mean, sigma the underlying normal's
                mu = math.log(self.mean) - self.sigma ** 2 / 2
                x = rng.lognormvariate(mu, self.sigma)
            case "geometric":  # trials until the first success, >= 1
                u = 1.0 - rng.random()
                x = 1.0 if self.p >= 1 else math.floor(math.log(u) / math.log(1 - self.p)) + 1.0
            case "zipf":  # rank in 1..max with P(k) ~ k^-s, by inversion over the finite support
                x = _zipf(rng, self.s, int(self.max or 1000))
            case _:
                raise AssertionError(self.kind)
        if self.min is not None:
            x = max(self.min, x)
        if self.max is not None:
            x = min(self.max, x)
        return x

    def sample_int(self, rng: random.Random, floor: int = 0) -> int:
        return max(floor, round(self.sample(rng)))

    @property
    def expected(self) -> float:
        """The mean before clamping (for reports and output-length hints)."""
        match self.kind:
            case "uniform":
                return (self.low + self.high) / 2
            case "geometric":
                return 1.0 / self.p
            case "zipf":
                n = int(self.max or 1000)
                z = sum(k ** -self.s for k in range(1, n + 1))
                return sum(k ** (1 - self.s) for k in range(1, n + 1)) / z
            case _:
                return self.mean


def _zipf(rng: random.Random, s: float, n: int) -> float:
    u = rng.random() * sum(k ** -s for k in range(1, n + 1))
    acc = 0.0
    for k in range(1, n + 1):
        acc += k ** -s
        if acc >= u:
            return float(k)
    return float(n)


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{field}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise SpecError(f"{field}: must be finite")
    return float(value)


def parse_dist(value: object, field: str, *, nonnegative: bool = True) -> Dist:
    """A Dist from spec data; errors name `field`."""
    if not isinstance(value, Mapping):
        x = _number(value, field)
        if nonnegative and x < 0:
            raise SpecError(f"{field}: must be >= 0, got {x}")
        return Dist("const", mean=x)
    kind = value.get("dist")
    if kind not in _PARAMS:
        raise SpecError(f"{field}.dist: expected one of {sorted(_PARAMS)}, got {kind!r}")
    unknown = set(value) - _PARAMS[kind] - {"dist", "min", "max"}
    if unknown:
        raise SpecError(f"{field}: unknown key(s) {sorted(unknown)} for dist {kind}")
    missing = _REQUIRED[kind] - set(value)
    if kind == "geometric" and not ({"p", "mean"} & set(value)):
        missing = {"p"}
    if missing:
        raise SpecError(f"{field}: dist {kind} needs {sorted(missing)}")
    nums = {k: _number(v, f"{field}.{k}") for k, v in value.items() if k != "dist"}
    lo, hi = nums.get("min"), nums.get("max")
    if lo is not None and hi is not None and lo > hi:
        raise SpecError(f"{field}: min ({lo}) is greater than max ({hi})")
    d = Dist(kind, min=lo, max=hi)
    match kind:
        case "const":
            d = Dist(kind, mean=nums["value"], min=lo, max=hi)
        case "uniform":
            if nums["low"] > nums["high"]:
                raise SpecError(f"{field}: low ({nums['low']}) is greater than high ({nums['high']})")
            d = Dist(kind, low=nums["low"], high=nums["high"], min=lo, max=hi)
        case "exponential":
            if nums["mean"] < 0:
                raise SpecError(f"{field}.mean: must be >= 0")
            d = Dist(kind, mean=nums["mean"], min=lo, max=hi)
        case "lognormal":
            if nums["mean"] <= 0:
                raise SpecError(f"{field}.mean: must be > 0")
            if nums["sigma"] < 0:
                raise SpecError(f"{field}.sigma: must be >= 0")
            d = Dist(kind, mean=nums["mean"], sigma=nums["sigma"], min=lo, max=hi)
        case "geometric":
            p = nums["p"] if "p" in nums else 1.0 / nums["mean"] if nums["mean"] >= 1 else -1.0
            if not 0 < p <= 1:
                raise SpecError(f"{field}: geometric needs 0 < p <= 1 (or mean >= 1)")
            d = Dist(kind, p=p, min=lo, max=hi)
        case "zipf":
            if nums["s"] <= 0:
                raise SpecError(f"{field}.s: must be > 0")
            d = Dist(kind, s=nums["s"], min=lo, max=hi if hi is not None else 1000.0)
    if nonnegative and d.kind == "const" and d.mean < 0:
        raise SpecError(f"{field}.value: must be >= 0")
    return d
