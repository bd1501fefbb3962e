"""The pure part of the Redis 8 vector-set index: ids, commands and reply parsing."""

from __future__ import annotations

import numpy as np
import pytest

from cache import keys
from cache.vector_sets import (
    context_prefix,
    context_tag,
    cosine_of,
    entry_id,
    parse_vsim,
    vadd_args,
    vsim_args,
)

CTX = "ab" * 32  # a sha256 hex digest


def test_an_entry_id_names_its_context() -> None:
    entry = entry_id(CTX, "u1")
    assert entry.startswith(CTX[:32]) and context_prefix(entry) == context_tag(CTX) == CTX[:32]
    assert context_prefix("0123abcd") is None  # an id of the older format names no set
    with pytest.raises(ValueError):
        context_tag("short")


def test_the_vector_set_key_carries_the_tenant_hash_tag() -> None:
    assert keys.semantic_vector_set("acme", CTX[:32]) == f"ost:{{t:acme}}:sem:vs:{CTX[:32]}"


def test_commands_send_unquantized_float32_blobs() -> None:
    vec = np.array([0.5, -0.25], dtype=np.float64)
    add = vadd_args("k", vec, "e")
    assert add[:3] == ("VADD", "k", "FP32") and add[4:] == ("e", "NOQUANT")
    assert np.frombuffer(add[3], dtype=np.float32).tolist() == [0.5, -0.25]  # type: ignore[arg-type]
    assert vsim_args("k", vec, 8)[4:] == ("WITHSCORES", "COUNT", 8)


@pytest.mark.parametrize(("score", "cosine"), [(1.0, 1.0), (0.5, 0.0), (0.0, -1.0), (0.95, 0.9)])
def test_vsim_scores_map_back_to_cosine(score: float, cosine: float) -> None:
    assert cosine_of(score) == pytest.approx(cosine)


@pytest.mark.parametrize("reply", [
    [b"e2", b"0.9", b"e1", b"0.95"],  # RESP2, raw
    {b"e2": 0.9, b"e1": 0.95},  # parsed by redis-py 6+
])
def test_vsim_replies_parse_most_similar_first(reply: object) -> None:
    assert [(e, round(c, 6)) for e, c in parse_vsim(reply)] == [("e1", 0.9), ("e2", 0.8)]


def test_vsim_reply_edge_cases() -> None:
    assert parse_vsim(None) == [] and parse_vsim([]) == []
    with pytest.raises(ValueError):
        parse_vsim([b"e1"])
