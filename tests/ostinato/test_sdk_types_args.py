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


@pytest.mark.parametrize(("deadline_s", "seconds", "nanos"), [
    (2.5, 2, 500_000_000), (0.3, 0, 300_000_000), (7, 7, 0), (1e-12, 0, 1_000),  # 1 µs: never zero
    (0.9999999999, 1, 0), (365 * 86_400, 365 * 86_400, 0),  # a year: the gateway's limit
])
def test_a_deadline_is_sent_as_a_positive_duration(deadline_s: float, seconds: int,
                                                   nanos: int) -> None:
    d = program_options(deadline_s=deadline_s).deadline
    assert (d.seconds, d.nanos) == (seconds, nanos)


@pytest.mark.parametrize("deadline_s", [-0.5, -1.5, 0, 0.0, 1e30, 365 * 86_400 + 1,
                                        float("nan"), float("inf"), True, "3"])
def test_a_deadline_not_above_zero_or_too_long_is_refused(deadline_s: Any) -> None:
    """As the SDK refuses its other bad arguments: before sending, naming the argument (a
    negative one was sent as its absolute value, one of 1e30 failed in protobuf)."""
    with pytest.raises(ValueError, match="deadline_s must be a number of seconds above 0"):
        program_options(deadline_s=deadline_s)


def test_logprobs_and_parallel_tool_calls_are_sent() -> None:
    spec = call_spec(prompt="x", logprobs=True, top_logprobs=5, parallel_tool_calls=False)
    assert spec.logprobs and spec.top_logprobs == 5
    assert spec.HasField("parallel_tool_calls") and not spec.parallel_tool_calls
    assert not call_spec(prompt="x", parallel_tool_calls=None).HasField("parallel_tool_calls")


@pytest.mark.parametrize(("build", "error", "message"), [
    (lambda: call_spec(max_token=3), TypeError, "a call takes no argument max_token"),
    (lambda: Graph().call(prompt="x", temprature=0.5), TypeError, "no argument temprature"),
    (lambda: program_options(deadline=3), TypeError, "a program takes no argument deadline"),
    (lambda: call_spec(cache="sometimes"), ValueError, "cache must be one of"),
    # the gateway's rules, refused before sending, naming the argument
    (lambda: call_spec(max_tokens=0), ValueError, "max_tokens must be a whole number from 1 "),
    (lambda: call_spec(temperature="hot"), ValueError, "temperature must be a number, got 'hot'"),
    (lambda: call_spec(top_p=None), ValueError, "top_p must be a number"),
    (lambda: call_spec(top_logprobs=21, logprobs=True), ValueError,
     "top_logprobs must be a whole number from 0 to 20"),
    (lambda: call_spec(logprobs="yes"), ValueError, "logprobs must be True or False"),
    (lambda: call_spec(parallel_tool_calls=0), ValueError, "parallel_tool_calls must be True or"),
    # SDK review 2026-12-05 F7: a ValueError naming the argument, not a TypeError inside
    (lambda: call_spec(messages="hello"), ValueError, "messages must be a list of"),
    (lambda: call_spec(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
     ValueError, "a message's content must be a string or a list of text parts"),
    (lambda: call_spec(messages=[("user",)]), ValueError, "a message must be a"),
    (lambda: call_spec(stop=["a", 1]), ValueError, "stop must be a string or a list of str"),
    (lambda: call_spec(tags=3), ValueError, "tags must be a string or a list of strings"),
    (lambda: call_spec(tool_choice={"type": "function"}), ValueError, "tool_choice must be"),
    (lambda: call_spec(restart_on_failure="yes"), ValueError, "restart_on_failure must be True"),
    (lambda: program_options(labels={"n": 1}), ValueError, "labels must map strings to strings"),
    # ids the gateway refuses, refused before sending (SDK review 2026-12-06: sent, and
    # answered InvalidArgument)
    (lambda: program_options(program_id="a/b"), ValueError, "program_id must be at most 128 "
     "characters and contain no '/'"),
    (lambda: program_options(program_id="x" * 129), ValueError, "program_id must be at most"),
    (lambda: program_options(program_class="\x1b[2J"), ValueError,
     "program_class must not contain control characters"),
    (lambda: call_spec(call_id="a/b"), ValueError, "call_id must be at most 128 characters"),
    (lambda: call_spec(thread_id="t" * 129), ValueError, "thread_id must be at most 128"),
    (lambda: program_options(reject_when_late="no"), ValueError, "reject_when_late must be"),
    # SDK review 2026-12-05 LOW: bare TypeErrors from protobuf or dict(), naming nothing
    (lambda: call_spec(thread_id=1), ValueError, "thread_id must be a string, got 1"),
    (lambda: call_spec(call_id=3), ValueError, "call_id must be a string, got 3"),
    (lambda: Graph().call(thread_id=2, prompt="x"), ValueError, "thread_id must be a string"),
    (lambda: call_spec(prompt=b"x"), ValueError, "prompt must be a string"),
    (lambda: call_spec(model=7), ValueError, "model must be a string"),
    (lambda: call_spec(reasoning_effort=1), ValueError, "reasoning_effort must be a string"),
    (lambda: call_spec(reasoning_in_text="yes"), ValueError, "reasoning_in_text must be True"),
    (lambda: call_spec(chat_template_kwargs=[1]), ValueError,
     "chat_template_kwargs must map strings to values, got \\[1\\]"),
    (lambda: call_spec(chat_template_kwargs={1: True}), ValueError,
     "chat_template_kwargs must map strings"),
    (lambda: call_spec(chat_template_kwargs={"x": object()}), ValueError,
     "chat_template_kwargs must hold JSON values only"),
    (lambda: call_spec(chat_template_kwargs={"x": float("nan")}), ValueError,
     "chat_template_kwargs must hold JSON values only"),
    (lambda: program_options(program_id=5), ValueError, "program_id must be a string"),
    (lambda: program_options(program_class=["react"]), ValueError,
     "program_class must be a string"),
])
def test_a_misspelt_or_bad_argument_is_refused(build: Callable[[], Any], error: type,
                                               message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_chat_template_kwargs_are_sent_as_one_json_object() -> None:
    spec = call_spec(prompt="x", chat_template_kwargs={"enable_thinking": False, "n": [1]})
    assert spec.chat_template_kwargs == '{"enable_thinking": false, "n": [1]}'
    assert call_spec(prompt="x", chat_template_kwargs={}).chat_template_kwargs == ""


def test_one_string_is_one_stop_and_one_tag_not_its_characters() -> None:
    """SDK review 2026-12-05 F1: `stop="END"` was sent as ['E', 'N', 'D'] (as OpenAI's API,
    one string is one stop sequence)."""
    spec = call_spec(prompt="x", stop="END", tags="urgent")
    assert list(spec.sampling.stop) == ["END"] and list(spec.hints.tags) == ["urgent"]
    graph = Graph()
    graph.call(prompt="x", stop="END")
    assert list(graph.nodes[0].call.sampling.stop) == ["END"]


def test_default_node_ids_skip_the_ones_chosen() -> None:
    graph = Graph()
    graph.call(id="n1", prompt="x")
    assert [graph.call(prompt="y").id, graph.call(prompt="z").id] == ["n2", "n3"]


def test_openai_content_parts_and_tool_choice_forms_are_taken() -> None:
    spec = call_spec(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice={"type": "function", "function": {"name": "f"}})
    assert spec.messages[0].content == "Hello, world"
    assert spec.tool_choice.mode == common_pb2.TOOL_CHOICE_MODE_FUNCTION
    assert spec.tool_choice.function_name == "f"


def test_one_parent_is_one_call_not_the_letters_of_its_id() -> None:
    """(SDK review 2026-12-06: parents="0f5..." was split into characters; a CallOutput given
    alone was "not iterable")"""
    from ostinato.sdk_results import CallOutput, Usage
    from ostinato.sdk_types import ThreadTracker

    out = CallOutput(call_id="c7", text="", finish_reason="stop", usage=Usage(0, 0, 0),
                     worker_id="w", latency_s=0.0, queue_s=0.0, engine_s=0.0, priority=0,
                     simulated=True, cache_hit="miss")
    threads = ThreadTracker()
    assert threads.parents(None, "c1") == ["c1"]
    assert threads.parents(None, out) == ["c7"]
    assert threads.parents(None, ["c1", out]) == ["c1", "c7"]
    assert threads.parents(None, []) == []
