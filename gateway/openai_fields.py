"""What every OpenAI-shaped request parser here shares: the 400 it raises, reading a
numeric or an optional field (gateway/openai_format.py, openai_tools.py, openai_sampling.py,
the Responses API's)."""

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


def optional(value: Any, kind: type, default: Any) -> Any:
    """`value` when of `kind`, `default` when None (left out); otherwise ValueError."""
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ValueError(kind.__name__)
    return value


SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")


def check_metadata(metadata: Any) -> None:
    """OpenAI's rule: at most 16 pairs, keys of at most 64 characters, string values of at
    most 512 (it is echoed in the response, and stored with it)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise BadRequest("metadata must be an object", "metadata")
    if len(metadata) > 16 or not all(
            len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in metadata.items()):
        raise BadRequest("metadata: at most 16 pairs, keys of at most 64 characters and "
                         "string values of at most 512", "metadata")


def check_service_tier(value: Any) -> None:
    """Taken without effect (no tiers here), but only as one of OpenAI's."""
    if value is not None and value not in SERVICE_TIERS:
        raise BadRequest(f"service_tier must be one of {', '.join(SERVICE_TIERS)}",
                         "service_tier")
