"""What every OpenAI-shaped request parser here shares: the 400 it raises and reading a
numeric field (gateway/openai_format.py, gateway/openai_sampling.py, the Responses API's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code  # OpenAI's error code, where it names one


def number(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not float(value).is_integer()):
        raise BadRequest(f"{name} must be {'an integer' if kind is int else 'a number'}", name)
    return kind(value)
