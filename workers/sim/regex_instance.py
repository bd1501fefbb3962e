"""A string that a JSON Schema ``pattern`` matches, for the sim engine's JSON instances.

Built from Python's own parse of the expression (``re._parser``, what ``re.compile`` reads):
each literal as written, a class's member, a repeat's count from its minimum up to a few
more, an alternation's branch and a group's text for its back-references, all drawn from the
seeded ``Rng``. Anchors and word boundaries write nothing. Lookarounds and conditionals are
not supported (UnsupportedPattern). JSON Schema's patterns are ECMA-262 and unanchored; the
caller checks what comes out with ``re.search`` (and the schema's other keywords), so a
pattern whose ECMA meaning Python reads otherwise is refused, never answered wrongly.
"""

from __future__ import annotations

import re
import string
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from workers.sim.json_values import Rng

EXTRA_REPEATS = 3  # a repeat takes its minimum count and up to this many more
UNBOUNDED = 1 << 20  # past any count a pattern would write (MAXREPEAT is far larger)
# what a class draws from besides its own literals and ranges (a negated class, a category)
_UNIVERSE = string.ascii_letters + string.digits + string.punctuation + " "
_CATEGORIES = {  # each category as Python reads it, to test a character against
    sre.CATEGORY_DIGIT: re.compile(r"\d"), sre.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    sre.CATEGORY_WORD: re.compile(r"\w"), sre.CATEGORY_NOT_WORD: re.compile(r"\W"),
    sre.CATEGORY_SPACE: re.compile(r"\s"), sre.CATEGORY_NOT_SPACE: re.compile(r"\S"),
}
MAX_RANGE = 256  # characters of one range drawn from (the first ones)


class UnsupportedPattern(ValueError):
    pass


def pattern_instance(pattern: str, rng: Rng) -> str:
    """A string `pattern` matches whole (so `re.search` finds it); UnsupportedPattern when
    the expression does not compile or uses what is not supported."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise UnsupportedPattern(f"'pattern' {pattern!r} is not a regular expression: {exc}") \
            from exc
    groups: dict[int, str] = {}
    return _sequence(parsed, rng, groups)


def _sequence(items: Any, rng: Rng, groups: dict[int, str]) -> str:
    return "".join(_item(op, arg, rng, groups) for op, arg in items)


def _item(op: Any, arg: Any, rng: Rng, groups: dict[int, str]) -> str:
    if op is sre.LITERAL:
        return chr(arg)
    if op is sre.NOT_LITERAL:
        return rng.choice([c for c in _UNIVERSE if ord(c) != arg])
    if op is sre.ANY:
        return rng.choice(string.ascii_letters)
    if op is sre.IN:
        return _member(arg, rng)
    if op is sre.AT:
        return ""  # ^ $ \b \B \A \Z: a position, no text
    if op is sre.BRANCH:
        return _sequence(rng.choice(arg[1]), rng, groups)
    if op is sre.SUBPATTERN:
        group, _, _, items = arg
        text = _sequence(items, rng, groups)
        if group is not None:
            groups[group] = text
        return text
    if op is sre.GROUPREF:
        return groups.get(arg, "")
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        lo, hi, items = arg
        hi = min(hi, lo + EXTRA_REPEATS, UNBOUNDED)
        return "".join(_sequence(items, rng, groups) for _ in range(rng.between(lo, hi)))
    if op is sre.ATOMIC_GROUP:
        return _sequence(arg, rng, groups)
    what = {sre.ASSERT: "lookarounds", sre.ASSERT_NOT: "lookarounds",
            sre.GROUPREF_EXISTS: "conditionals"}.get(op, str(op).lower())
    raise UnsupportedPattern(f"'pattern': {what} are not supported")


def _member(items: Any, rng: Rng) -> str:
    """A character of a class (`[a-z_]`, `\\d`, `[^,\\s]`): drawn from its own literals and
    ranges and the printable ASCII, each tested against the class as Python reads it."""
    negated = bool(items) and items[0][0] is sre.NEGATE
    members = items[1:] if negated else items
    candidates = set(_UNIVERSE)
    for op, arg in members:
        if op is sre.LITERAL:
            candidates.add(chr(arg))
        elif op is sre.RANGE:
            candidates.update(chr(c) for c in range(arg[0], min(arg[1], arg[0] + MAX_RANGE) + 1))
        elif not (op is sre.CATEGORY and arg in _CATEGORIES):
            raise UnsupportedPattern(f"'pattern': {str(op).lower()} in a class is not supported")
    pool = sorted(c for c in candidates if _in(c, members) != negated)
    if not pool:
        raise UnsupportedPattern("'pattern': a character class no character fits")
    return str(rng.choice(pool))


def _in(c: str, members: Any) -> bool:
    for op, arg in members:
        if op is sre.LITERAL and c == chr(arg):
            return True
        if op is sre.RANGE and arg[0] <= ord(c) <= arg[1]:
            return True
        if op is sre.CATEGORY and _CATEGORIES[arg].fullmatch(c):
            return True
    return False
