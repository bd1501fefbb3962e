"""Cache modes from the HTTP header and the gRPC CachePolicy."""

from __future__ import annotations

import pytest

from cache.modes import (
    CacheMode,
    CachePolicy,
    InvalidCachePolicy,
    from_proto,
    hit_header,
    parse_header,
)
from ostinato.v1 import common_pb2

DEFAULT = CachePolicy(CacheMode.OFF, 0.8)


@pytest.mark.parametrize(("header", "expected"), [
    (None, DEFAULT),
    ("", DEFAULT),
    ("off", CachePolicy(CacheMode.OFF, 0.8)),
    ("exact", CachePolicy(CacheMode.EXACT, 0.8)),
    ("semantic", CachePolicy(CacheMode.SEMANTIC, 0.8)),
    ("Semantic; threshold=0.92", CachePolicy(CacheMode.SEMANTIC, 0.92)),
])
def test_header(header: str | None, expected: CachePolicy) -> None:
    assert parse_header(header, DEFAULT) == expected


@pytest.mark.parametrize("header", ["fuzzy", "semantic;threshold=2", "semantic;threshold=x",
                                    "exact;threshold=0.9", "semantic;salt=mine"])
def test_bad_header_is_rejected_with_a_clear_message(header: str) -> None:
    with pytest.raises(InvalidCachePolicy):
        parse_header(header, DEFAULT)


def test_proto_policy_and_hit_header() -> None:
    semantic = common_pb2.CachePolicy(mode=common_pb2.CACHE_MODE_SEMANTIC, semantic_threshold=0.9)
    assert from_proto(semantic, DEFAULT) == CachePolicy(CacheMode.SEMANTIC, pytest.approx(0.9))
    assert from_proto(common_pb2.CachePolicy(), DEFAULT) == DEFAULT  # unspecified: the default
    with pytest.raises(InvalidCachePolicy):
        from_proto(common_pb2.CachePolicy(mode=common_pb2.CACHE_MODE_EXACT, semantic_threshold=0.9),
                   DEFAULT)
    with pytest.raises(InvalidCachePolicy, match=r"cache\.mode 99 is not a CacheMode"):
        from_proto(common_pb2.CachePolicy(mode=99), DEFAULT)  # type: ignore[arg-type]
    assert [hit_header(h) for h in (common_pb2.CACHE_HIT_EXACT, common_pb2.CACHE_HIT_SEMANTIC,
                                    common_pb2.CACHE_HIT_MISS)] == ["exact", "semantic", "miss"]
