"""JSON read strictly: NaN, Infinity and -Infinity, which Python's json module takes by
default, are refused. They are no JSON (RFC 8259), and json.dumps writes them back as bare
tokens that every strict parser refuses: a request body holding one would be echoed in
answers no client can read."""

from __future__ import annotations

import json
from typing import Any


class NotJson(ValueError):
    """A constant that is not JSON (its name says which)."""


def _refuse(name: str) -> Any:
    raise NotJson(f"{name} is not JSON")


DECODER = json.JSONDecoder(parse_constant=_refuse)


def loads(text: str | bytes) -> Any:
    """json.loads, refusing NaN and Infinity (NotJson); its other errors are json's."""
    return json.loads(text, parse_constant=_refuse)
