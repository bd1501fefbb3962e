"""Random primitive values for JSON instances: the seeded generator, words, string formats
and the integer ranges numbers are drawn from (workers/sim/json_instance.py builds the values
a schema asks for out of these)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()


class Rng:
    """A 64-bit LCG (Knuth's MMIX constants) seeded through splitmix64."""

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        z = (seed + 0x9E3779B97F4A7C15) & self._MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        self._state = z ^ (z >> 31)

    def bits(self) -> int:
        """32 pseudo-random bits."""
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & self._MASK
        return self._state >> 32

    def below(self, n: int) -> int:
        """An integer in [0, n), n > 0 (arbitrary size)."""
        acc, width = 0, 1
        while width < n << 16:
            acc, width = (acc << 32) | self.bits(), width << 32
        return acc % n

    def between(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return lo + self.below(hi - lo + 1)

    def unit(self) -> float:
        """A float in [0, 1)."""
        return self.bits() / 2**32

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.below(len(seq))]

    def word(self) -> str:
        return str(self.choice(WORDS))


def default_range(lo: Any, hi: Any, span: int) -> tuple[Any, Any]:
    """Finite [lo, hi] from optional bounds: near zero when that is allowed."""
    if lo is None and hi is None:
        return 0, span
    if lo is None:
        return (0 if hi >= 0 else hi - span), hi
    if hi is None:
        return lo, (lo + span if lo > 0 else span)
    return lo, hi


def outward(start: int, lo: int, hi: int, limit: int = 64) -> list[int]:
    """`start`, then alternately one more and one less, ..., within [lo, hi]; then 0 if allowed."""
    out = [start]
    for d in range(1, limit):
        out.extend(k for k in (start + d, start - d) if lo <= k <= hi)
    if lo <= 0 <= hi:
        out.append(0)
    return out


def spare_keys() -> Iterator[str]:
    """Property names for objects that need more properties than they list: alpha, bravo, ..."""
    yield from WORDS
    for i in itertools.count(2):
        yield from (f"{w}{i}" for w in WORDS)


def _uuid4(rng: Rng) -> str:
    bits = 0
    for _ in range(4):
        bits = (bits << 32) | rng.bits()
    return str(uuid.UUID(int=bits, version=4))


def _date(rng: Rng) -> str:
    return f"2024-{rng.between(1, 12):02d}-{rng.between(1, 28):02d}"


def _time(rng: Rng) -> str:
    return f"{rng.between(8, 17):02d}:{rng.choice((0, 15, 30, 45)):02d}:00Z"


FORMATS: dict[str, Callable[[Rng], str]] = {
    "date": _date,
    "time": _time,
    "date-time": lambda rng: f"{_date(rng)}T{_time(rng)}",
    "email": lambda rng: f"{rng.word()}@example.com",
    "idn-email": lambda rng: f"{rng.word()}@example.com",
    "uri": lambda rng: f"https://example.com/{rng.word()}",
    "iri": lambda rng: f"https://example.com/{rng.word()}",
    "uri-reference": lambda rng: f"https://example.com/{rng.word()}",
    "iri-reference": lambda rng: f"https://example.com/{rng.word()}",
    "uuid": _uuid4,
    "hostname": lambda rng: f"{rng.word()}.example.com",
    "idn-hostname": lambda rng: f"{rng.word()}.example.com",
    "ipv4": lambda rng: f"192.0.2.{rng.between(1, 254)}",
    "ipv6": lambda rng: f"2001:db8::{rng.between(1, 0xFFFF):x}",
}
