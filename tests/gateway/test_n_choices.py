"""n > 1: each answer its own call beside the first (gateway/http_api.py `_sibling`), with
seed + i when the request gave a seed and none when it did not (a fixed seed per answer
made answers 1..n-1 the same text on every request: API review 2026-12-07)."""

from __future__ import annotations

import pytest

from gateway.http_api import _sibling
from ostinato.v1 import common_pb2


@pytest.mark.parametrize(("seed", "i", "expected"), [
    (None, 1, None), (None, 7, None),
    (0, 1, 1), (41, 2, 43),
    (2**64 - 1, 1, 0),  # a uint64 field: wraps around
])
def test_an_answer_gets_a_seed_only_from_the_requests(seed: int | None, i: int,
                                                      expected: int | None) -> None:
    call = common_pb2.CallSpec(call_id="c", thread_id="main",
                               sampling=common_pb2.SamplingParams(temperature=0.7))
    if seed is not None:
        call.sampling.seed = seed
    out = _sibling(call, i)
    assert (out.call_id, out.thread_id) == (f"c.n{i}", f"main.n{i}")
    assert out.sampling.temperature == pytest.approx(0.7)
    assert out.sampling.HasField("seed") == (expected is not None)
    if expected is not None:
        assert out.sampling.seed == expected
