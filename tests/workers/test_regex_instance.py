"""Strings drawn for a JSON Schema `pattern`: each one matched whole by the pattern, for
every seed; what is not supported is refused by name."""

from __future__ import annotations

import re

import pytest

from workers.sim.json_values import Rng
from workers.sim.regex_instance import UnsupportedPattern, pattern_instance

PATTERNS = [
    r"abc", r"^[A-Z]{3}-\d{4}$", r"^\S+@\S+\.\w{2,}$", r"^(ab|cd)+-\1$", r"a*b+c?d{2,}",
    r"^[^,\s]{2,5}$", r"[\d_-]+", r"(?:x|yz){3}", r"(?P<q>['\"]).*?(?P=q)", r".{4}\.", r"^\W\D\s$",
    r"^[a-f0-9]{8}-[a-f0-9]{4}$", r"(?i)HeLLo", r"\bword\b", r"^(?>a+)b$", r"[\u00e9\u4e2d]{2}",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_pattern_matches_what_is_drawn(pattern: str) -> None:
    drawn = {pattern_instance(pattern, Rng(seed)) for seed in range(40)}
    for text in drawn:
        assert re.fullmatch(pattern, text), (pattern, text)
    if re.search(r"(?<!\()[*+?{]|\|", pattern):
        assert len(drawn) > 1  # the seed chooses


@pytest.mark.parametrize(("pattern", "says"), [
    (r"(?=a)a", "lookarounds"), (r"(?<!a)b", "lookarounds"), (r"(a)?(?(1)b|c)", "conditionals"),
    (r"[^\s\S]", "no character fits"), (r"(", "not a regular expression"),
])
def test_refused(pattern: str, says: str) -> None:
    with pytest.raises(UnsupportedPattern, match=says):
        pattern_instance(pattern, Rng(0))
