"""JSON read strictly: NaN, Infinity and -Infinity, which Python's json module takes by
default, are refused. They are no JSON (RFC 8259), and json.dumps writes them back as bare
tokens that every strict parser refuses: a request body holding one would be echoed in
answers no client can read. So is a number past a double's range (1e999), which Python
reads as infinity."""

from __future__ import annotations

import json
import math
from typing import Any


class NotJson(ValueError):
    """A constant that is not JSON (its name says which)."""


def _refuse(name: str) -> Any:
    raise NotJson(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotJson(f"{text[:40]} is beyond a double's range")
    return value


DECODER = json.JSONDecoder(parse_constant=_refuse, parse_float=_finite)


def loads(text: str | bytes) -> Any:
    """json.loads, refusing NaN, Infinity and numbers past a double (NotJson); its other
    errors are json's."""
    return json.loads(text, parse_constant=_refuse, parse_float=_finite)
