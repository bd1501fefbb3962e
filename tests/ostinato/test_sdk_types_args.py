"""What the SDK builds from a call's and a program's arguments, and the arguments it refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ostinato.dag import Graph
from ostinato.sdk_types import call_spec, program_options
from ostinato.v1 import common_pb2


def test_a_call_spec_carries_every_argument() -> None:
    spec = call_spec(call_id="c", thread_id="t", parents=["p"], messages=[("user", "hi")],
                     max_tokens=7, temperature=0.0, seed=3, stop=["\n"], cache="semantic",
                     semantic_threshold=0.9, tags=["x"], tool_choice="required",
                     json_schema={"type": "object"}, restart_on_failure=True)
    assert (spec.call_id, spec.thread_id, list(spec.parent_call_ids)) == ("c", "t", ["p"])
    assert spec.messages[0].role == "user" and spec.messages[0].content == "hi"
    assert spec.sampling.max_new_tokens == 7 and spec.sampling.HasField("temperature")
    assert spec.sampling.seed == 3 and list(spec.sampling.stop) == ["\n"]
    assert spec.cache.mode == common_pb2.CACHE_MODE_SEMANTIC
    assert spec.cache.semantic_threshold == pytest.approx(0.9)
    assert spec.tool_choice.mode == common_pb2.TOOL_CHOICE_MODE_REQUIRED
    assert spec.response_format.type == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
    assert spec.restart_on_failure and list(spec.hints.tags) == ["x"]
    unset = call_spec(prompt="x").sampling
    assert not unset.HasField("temperature") and not unset.HasField("max_new_tokens")


def test_program_options_name_the_program_unless_given() -> None:
    named = program_options(deadline_s=1.5, program_class="react", labels={"a": "b"})
    assert len(named.program_id) == 32 and named.program_class == "react"
    assert (named.deadline.seconds, named.deadline.nanos) == (1, 500_000_000)
    assert program_options(program_id="mine").program_id == "mine"


@pytest.mark.parametrize(("build", "error", "message"), [
    (lambda: call_spec(max_token=3), TypeError, "a call takes no argument max_token"),
    (lambda: Graph().call(prompt="x", temprature=0.5), TypeError, "no argument temprature"),
    (lambda: program_options(deadline=3), TypeError, "a program takes no argument deadline"),
    (lambda: call_spec(cache="sometimes"), ValueError, "cache must be one of"),
])
def test_a_misspelt_or_bad_argument_is_refused(build: Callable[[], Any], error: type,
                                               message: str) -> None:
    with pytest.raises(error, match=message):
        build()
