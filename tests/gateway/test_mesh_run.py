"""What the gateway's call path tells the planner about a call (gateway/mesh_run.py): pure."""

from __future__ import annotations

import pytest

from gateway.mesh_run import planner_hints
from ostinato.v1 import common_pb2


@pytest.mark.parametrize(("hint", "least", "expected"), [
    (0, 0, 0), (50, 0, 50), (0, 80, 80),  # min_tokens: at least that many will come
    (120, 80, 120), (80, 120, 120),
])
def test_min_tokens_is_a_floor_under_the_expected_output(hint: int, least: int,
                                                         expected: int) -> None:
    call = common_pb2.CallSpec(
        hints=common_pb2.CallHints(expected_output_tokens=hint, tags=["a"]),
        sampling=common_pb2.SamplingParams(min_new_tokens=least))
    out = planner_hints(call)
    assert out.expected_output_tokens == expected and list(out.tags) == ["a"]
