"""n > 1: each answer its own call beside the first (gateway/http_api.py `_sibling`), with
seed + i when the request gave a seed, a random one when it did not (a fixed seed per
answer made answers 1..n-1 the same text on every request; no seed at all made a
deterministic engine's n answers equal: API review and diff review 2026-12-07)."""

from __future__ import annotations

import pytest

from gateway.http_api import SEED_BITS, _sibling
from ostinato.v1 import common_pb2


def _call(seed: int | None) -> common_pb2.CallSpec:
    call = common_pb2.CallSpec(call_id="c", thread_id="main",
                               sampling=common_pb2.SamplingParams(temperature=0.7))
    if seed is not None:
        call.sampling.seed = seed
    return call


@pytest.mark.parametrize(("seed", "i", "expected"), [
    (0, 1, 1), (41, 2, 43),
    (2**64 - 1, 1, 0),  # a uint64 field: wraps around
])
def test_an_answer_of_a_seeded_request_gets_seed_plus_i(seed: int, i: int, expected: int) -> None:
    out = _sibling(_call(seed), i)
    assert (out.call_id, out.thread_id) == (f"c.n{i}", f"main.n{i}")
    assert out.sampling.temperature == pytest.approx(0.7)
    assert out.sampling.seed == expected


def test_an_answer_of_an_unseeded_request_gets_a_fresh_random_seed() -> None:
    seeds = {_sibling(_call(None), i).sampling.seed for i in (1, 1, 2, 2, 3)}
    assert len(seeds) == 5  # a repeat: 1 in 2^63 per pair
    assert all(0 <= s < 1 << SEED_BITS for s in seeds)


def test_greedy_answers_get_no_seed() -> None:
    """No seed changes greedy decoding: none, so the exact cache's key stays the request's."""
    call = _call(None)
    call.sampling.temperature = 0.0
    assert not _sibling(call, 1).sampling.HasField("seed")
