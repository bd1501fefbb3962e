"""Cache modes asked for by a call: the gRPC CachePolicy and the HTTP `X-Ostinato-Cache` header.

    X-Ostinato-Cache: off | exact | semantic | semantic;threshold=0.92
    X-Ostinato-Cache-Hit: exact | semantic | miss        (response)

Pure parsing; a bad value raises InvalidCachePolicy (HTTP 400, gRPC INVALID_ARGUMENT).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ostinato.v1 import common_pb2

DEFAULT_THRESHOLD = 0.80  # cosine similarity; with the near-miss guard (cache/guard.py)
REQUEST_HEADER = "X-Ostinato-Cache"
HIT_HEADER = "X-Ostinato-Cache-Hit"


class InvalidCachePolicy(ValueError):
    pass


class CacheMode(enum.Enum):
    OFF = "off"
    EXACT = "exact"
    SEMANTIC = "semantic"  # semantic lookup, exact first


@dataclass(frozen=True)
class CachePolicy:
    mode: CacheMode
    threshold: float = DEFAULT_THRESHOLD


def _threshold(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise InvalidCachePolicy(f"semantic threshold must be in (0, 1], got {value}")
    return value


def parse_header(value: str | None, default: CachePolicy) -> CachePolicy:
    if value is None or not value.strip():
        return default
    mode_text, _, params = value.strip().partition(";")
    try:
        mode = CacheMode(mode_text.strip().lower())
    except ValueError:
        raise InvalidCachePolicy(
            f"{REQUEST_HEADER} must be off, exact or semantic[;threshold=<0..1>], got {value!r}"
        ) from None
    threshold = default.threshold
    for param in filter(None, (p.strip() for p in params.split(";"))):
        key, _, raw = param.partition("=")
        if key.strip().lower() != "threshold" or mode is not CacheMode.SEMANTIC:
            raise InvalidCachePolicy(f"unknown {REQUEST_HEADER} parameter {param!r}")
        try:
            threshold = _threshold(float(raw))
        except ValueError as exc:
            raise InvalidCachePolicy(f"{REQUEST_HEADER} threshold: {exc}") from None
    return CachePolicy(mode, threshold)


_FROM_PROTO = {common_pb2.CACHE_MODE_OFF: CacheMode.OFF, common_pb2.CACHE_MODE_EXACT: CacheMode.EXACT,
               common_pb2.CACHE_MODE_SEMANTIC: CacheMode.SEMANTIC}


def from_proto(policy: common_pb2.CachePolicy, default: CachePolicy) -> CachePolicy:
    if policy.mode not in common_pb2.CacheMode.values():  # (protobuf keeps unknown numbers)
        raise InvalidCachePolicy(f"cache.mode {policy.mode} is not a CacheMode")
    mode = _FROM_PROTO.get(policy.mode, default.mode)
    threshold = default.threshold
    if policy.semantic_threshold:
        if mode is not CacheMode.SEMANTIC:
            raise InvalidCachePolicy("cache.semantic_threshold needs cache.mode SEMANTIC")
        threshold = _threshold(policy.semantic_threshold)
    return CachePolicy(mode, threshold)


def hit_header(hit: int) -> str:
    """The response header value of a CallResult.cache_hit."""
    names: dict[int, str] = {common_pb2.CACHE_HIT_EXACT: "exact",
                             common_pb2.CACHE_HIT_SEMANTIC: "semantic"}
    return names.get(hit, "miss")


_TO_PROTO = {mode: value for value, mode in _FROM_PROTO.items()}


def header_to_proto(value: str) -> common_pb2.CachePolicy:
    """An `X-Ostinato-Cache` header as the call's CachePolicy (a threshold left out stays 0:
    the gateway's default). Raises InvalidCachePolicy."""
    policy = parse_header(value, CachePolicy(CacheMode.OFF, threshold=0.0))
    return common_pb2.CachePolicy(mode=_TO_PROTO[policy.mode],
                                  semantic_threshold=policy.threshold)
