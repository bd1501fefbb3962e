"""Responses API requests -> the chat-completions request they ask for (table tests), and
the refusals, each naming the Responses field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.calls import CallLimits, InvalidCall, normalize_call
from gateway.openai_format import BadRequest
from gateway.responses_api import _renamed, _top, call_from_responses
from gateway.responses_format import (
    PRIOR,
    Sources,
    chat_from_responses,
    checked_items,
    input_items,
    translate,
)

CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "id": "fc_1"}


@pytest.mark.parametrize(("body", "chat"), [
    ({"input": "hi"}, {"messages": [{"role": "user", "content": "hi"}]}),
    ({"input": "hi", "instructions": "Be brief.", "model": "m", "max_output_tokens": 5,
      "temperature": 0.2, "top_p": 0.9, "stream": True, "store": True, "metadata": {"a": "b"},
      "truncation": "disabled", "include": [], "reasoning": {"effort": None}},
     {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
      "model": "m", "max_completion_tokens": 5, "temperature": 0.2, "top_p": 0.9}),
    # content parts, developer role; reasoning items from another model are dropped
    ({"input": [{"type": "message", "role": "developer",
                 "content": [{"type": "input_text", "text": "a"}, {"type": "input_text",
                                                                   "text": "b"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "assistant", "content": [{"type": "output_text", "text": "c",
                                                   "annotations": []}]}]},
     {"messages": [{"role": "developer", "content": "ab"}, {"role": "assistant", "content": "c"}]}),
    # function calls join the assistant message before them; outputs are tool messages
    ({"input": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "let me"},
                CALL, {**CALL, "call_id": "c2"},
                {"type": "function_call_output", "call_id": "c1", "output": "1"},
                {"type": "function_call_output", "call_id": "c2",
                 "output": [{"type": "input_text", "text": "2"}]}]},
     {"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "content": "let me", "tool_calls": [
                       {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                       {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "1"},
                   {"role": "tool", "tool_call_id": "c2", "content": "2"}]}),
    ({"input": "x", "reasoning": {"effort": "low", "summary": "auto"}},
     {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"}),
    ({"input": "x", "reasoning": {"summary": "detailed", "generate_summary": "concise"}},
     {"messages": [{"role": "user", "content": "x"}]}),
    ({"input": [CALL]},
     {"messages": [{"role": "assistant", "content": None, "tool_calls": [
         {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
    ({"input": "x", "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}],
      "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": False},
     {"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}},
      "parallel_tool_calls": False}),
    ({"input": "x", "tool_choice": "required"},
     {"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "p", "schema": {},
                                        "strict": True}}},
     {"messages": [{"role": "user", "content": "x"}], "response_format": {
         "type": "json_schema", "json_schema": {"name": "p", "schema": {}, "strict": True}}}),
    ({"input": "x", "text": {"format": {"type": "json_object"}, "verbosity": "low"}},
     {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
    ({"input": "x", "text": {"format": {"type": "text"}}},
     {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
    # a forced call with a format: both go on (the chat path applies the format to a later
    # text answer only: gateway/calls.py)
    ({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": "required",
      "text": {"format": {"type": "json_schema", "name": "p", "schema": {}}}},
     {"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required",
      "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {}}}}),
    # fields a current client sends that change nothing here
    ({"input": "x", "prompt_cache_options": {"mode": "implicit"}, "max_tool_calls": 2,
      "moderation": None, "image": None, "background_options": None,
      "tools": [{"type": "function", "name": "f", "defer_loading": True,
                 "allowed_callers": ["direct"], "output_schema": {"type": "string"}}]},
     {"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]}),
    ({"input": "x", "top_logprobs": 2},
     {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 2}),
    ({"input": "x", "include": ["message.output_text.logprobs"]},
     {"messages": [{"role": "user", "content": "x"}], "logprobs": True}),
    # SGLang's sampling extensions, as the chat API takes them (new-user review, session 52)
    ({"input": "x", "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1, "min_tokens": 2,
      "ignore_eos": False},
     {"messages": [{"role": "user", "content": "x"}], "top_k": 5, "min_p": 0.1,
      "repetition_penalty": 1.1, "min_tokens": 2, "ignore_eos": False}),
])
def test_translation(body: dict[str, Any], chat: dict[str, Any]) -> None:
    assert chat_from_responses(body) == chat


@pytest.mark.parametrize(("body", "param", "needle"), [
    ([], None, "JSON object"),
    ({}, "input", "input must be"),
    ({"input": []}, "input", "non-empty"),
    # the Responses shape of a named function in the hint, not chat's (API review 2026-12-06)
    ({"input": "x", "tool_choice": "any"}, "tool_choice", '{"type": "function", "name": ...}'),
    ({"input": 5}, "input", "input must be"),
    ({"input": [5]}, "input", "input[0] must be an object"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input", "role"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input", "'item_reference'"),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input", "text parts"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input",
     "string text"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input", "call_id"),
    ({"input": [{"type": "reasoning"}]}, "input", "no message"),
    ({"input": "x", "instructions": 5}, "instructions", "string"),
    ({"input": "x", "previous_response_id": 5}, "previous_response_id", "string"),
    ({"input": "x", "store": "yes"}, "store", "true or false"),
    ({"input": "x", "conversation": 5}, "conversation", "conversation id"),
    ({"input": "x", "background": 0.0}, "background", "not supported"),  # 0.0 is not false
    ({"input": "x", "conversation": {"id": "conv_1", "x": 1}}, "conversation", "conversation id"),
    ({"input": "x", "conversation": "conv_1", "previous_response_id": "resp_1"}, "conversation",
     "both"),
    ({"input": "x", "background": True}, "background", "not supported"),
    ({"input": "x", "prompt": {"id": "p"}}, "prompt", "not supported"),
    ({"input": "x", "tools": [{"type": "file_search"}]}, "tools", "only function tools"),
    ({"input": "x", "tools": {"type": "function"}}, "tools", "array"),
    ({"input": "x", "tools": [{"type": "function", "name": "f", "extra": 1}]}, "tools", "extra"),
    ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice", "tool_choice"),
    ({"input": "x", "text": {"format": {"type": "xml"}}}, "text", "text.format"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "n", "schema": {},
                                        "mode": 1}}}, "text", "mode"),
    ({"input": "x", "text": "json"}, "text", "text must be"),
    ({"input": "x", "include": ["file_search_call.results"]}, "include", "file_search_call"),
    ({"input": "x", "include": "all"}, "include", "array"),
    ({"input": "x", "truncation": "middle"}, "truncation", "truncation"),
    ({"input": "x", "reasoning": {"effort": "extreme"}}, "reasoning", "reasoning.effort must"),
    ({"input": "x", "reasoning": {"summary": "long"}}, "reasoning", "reasoning.summary must"),
    ({"input": "x", "reasoning": {"mode": "deep"}}, "reasoning", "unknown field(s): mode"),
    ({"input": "x", "reasoning": "high"}, "reasoning", "must be an object"),
    ({"input": "x", "metadata": [1]}, "metadata", "object"),
    ({"input": "x", "stream": 1}, "stream", "true or false"),
    ({"input": "x", "frobnicate": 1}, "frobnicate", "unknown"),
    ({"input": "x", "image": {"size": "auto"}}, "image", "not supported"),
    ({"input": "x", "tools": [{"type": "function", "name": "f", "allowed_callers": []}]},
     "tools", "direct"),
])
def test_refusals(body: Any, param: str | None, needle: str) -> None:
    with pytest.raises(BadRequest) as err:
        chat_from_responses(body)
    assert err.value.param == param and needle in str(err.value)


@pytest.mark.parametrize(("body", "param", "needle"), [
    ({"input": "x", "max_output_tokens": "many"}, "max_output_tokens", "max_output_tokens must"),
    ({"input": "x", "max_output_tokens": 0.5}, "max_output_tokens", "max_output_tokens"),
    ({"input": "x", "temperature": "hot"}, "temperature", "temperature"),
    ({"input": "x", "top_k": 0}, "top_k", "top_k"),
])
def test_chat_refusals_name_the_responses_field(body: Any, param: str, needle: str) -> None:
    with pytest.raises(BadRequest) as err:
        call_from_responses(body, None)
    assert err.value.param == param and needle in str(err.value)
    assert "messages" not in str(err.value) and "max_completion_tokens" not in str(err.value)


ITEMS: list[Any] = [{"role": "user", "content": "q"},
                    {"type": "function_call", "call_id": "c", "name": "", "arguments": "{}"}]


@pytest.mark.parametrize(("body", "param", "needle"), [
    # the item the client sent, though instructions come first and calls join a message
    ({"instructions": "sys", "input": ITEMS}, "input", "input[1].name is required"),
    ({"input": [ITEMS[0], {"role": "assistant", "content": "let me"}, ITEMS[1]]}, "input",
     "input[2].name is required"),
    ({"input": [ITEMS[0], {**ITEMS[1], "name": "f"}, ITEMS[1]]}, "input",
     "input[2].name is required"),
    ({"input": "x", "tools": [{"type": "function", "name": "bad name"}]}, "tools",
     "tools[0].name must be"),
    ({"input": "x", "max_output_tokens": 10**9}, "max_output_tokens", "max_output_tokens"),
])
def test_errors_found_past_the_translation_name_the_responses_field(
        body: Any, param: str, needle: str) -> None:
    call, sources = call_from_responses(body, None)
    with pytest.raises(InvalidCall) as err:
        normalize_call(call, CallLimits(max_prompt_chars=10_000, max_messages=64,
                                       default_max_new_tokens=64, max_new_tokens_limit=4096))
    assert _top(_renamed(err.value.param, sources)) == param
    assert needle in (_renamed(str(err.value), sources) or "")


def test_a_translated_call_keeps_what_the_chat_path_makes_of_it() -> None:
    call, _ = call_from_responses({"input": "hi", "instructions": "sys", "max_output_tokens": 7,
                                "ostinato": {"call_id": "k"}}, None)
    assert [(m.role, m.content) for m in call.messages] == [("system", "sys"), ("user", "hi")]
    assert call.sampling.max_new_tokens == 7 and call.call_id == "k"
    call, _ = call_from_responses({"input": "hi", "top_k": 5, "min_tokens": 3}, None)
    assert (call.sampling.top_k, call.sampling.min_new_tokens) == (5, 3)


def test_a_continued_response_comes_after_the_instructions_and_before_the_input() -> None:
    """previous_response_id: the stored turns (input and output items, as stored) come first,
    after this request's instructions (earlier instructions are not carried over)."""
    prior = [{"type": "message", "role": "user", "content": "Weather in Oslo?"},
             {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
              "content": [{"type": "output_text", "text": "Let me look.", "annotations": [],
                           "logprobs": []}]},
             {**CALL, "status": "completed"}]
    body = {"instructions": "be brief", "previous_response_id": "resp_x",
            "input": [{"type": "function_call_output", "call_id": "c1", "output": "rain"}]}
    chat, sources = translate(body, prior)
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "rain"}]
    assert sources.messages == ["instructions", PRIOR, PRIOR, "input[0]"]
    assert input_items(body) == body["input"]
    assert input_items({"input": "hi"}) == [{"type": "message", "role": "user", "content": "hi"}]


def test_a_continued_response_may_add_a_plain_string() -> None:
    chat, _ = translate({"input": "And now?"}, [{"role": "user", "content": "Hi"}])
    assert [m["role"] for m in chat["messages"]] == ["user", "user"]


def test_what_is_stored_of_an_input_is_what_the_prompt_used() -> None:
    """No field the prompt's limits did not count is kept: unknown keys and reasoning
    items dropped, text parts joined."""
    body = {"input": [
        {"type": "reasoning", "summary": [], "encrypted_content": "x" * 1000},
        {"role": "user", "content": [{"type": "input_text", "text": "a", "junk": "y" * 100},
                                     {"type": "input_text", "text": "b"}], "junk": 1},
        {**CALL, "status": "completed", "junk": "z"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "rain"}], "id": "fco_1"}]}
    translate(body)
    assert input_items(body) == [
        {"type": "message", "role": "user", "content": "ab"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "rain"}]


@pytest.mark.parametrize("metadata", [
    {f"k{i}": "v" for i in range(17)}, {"k" * 65: "v"}, {"k": "v" * 513}, {"k": 5}])
def test_metadata_is_held_to_openais_limits(metadata: dict[str, Any]) -> None:
    with pytest.raises(BadRequest, match="metadata") as err:
        translate({"input": "x", "metadata": metadata})
    assert err.value.param == "metadata"


@pytest.mark.parametrize(("raw", "kept"), [
    ([], []),
    ([{"role": "user", "content": [{"type": "input_text", "text": "a"},
                                   {"type": "input_text", "text": "b"}]}],
     [{"type": "message", "role": "user", "content": "ab"}]),
    ([{"type": "reasoning", "summary": []}], []),  # another model's reasoning: dropped
    ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "id": "fc_1",
       "status": "completed"}],
     [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]),
])
def test_items_kept_as_a_prompt_uses_them(raw: list, kept: list) -> None:
    assert checked_items(raw, "items", 20, 100) == kept


@pytest.mark.parametrize("raw", [
    "not a list", [{"role": "user", "content": "x"}] * 3, [{"type": "input_image"}],
    [{"role": "robot", "content": "x"}], [{"role": "user", "content": "x" * 101}],
    [{"type": "function_call_output", "call_id": "c", "output": "x" * 60},
     {"type": "function_call", "call_id": "c", "name": "f", "arguments": "y" * 41}],
])
def test_items_refused_name_their_field(raw: object) -> None:
    with pytest.raises(BadRequest) as err:
        checked_items(raw, "items", 2, 100)
    assert err.value.param == "items"


def test_a_conversations_items_are_named_as_such() -> None:
    """HTTP API review 2026-12-05 F5: items from a conversation were called
    previous_response_id in errors, a field the request did not use."""
    prior = [{"type": "message", "role": "user", "content": "Hi"}]
    _, sources = translate({"input": "go on", "conversation": "conv_1"}, prior)
    assert sources.messages == ["conversation", "input"]
    _, sources = translate({"input": "go on", "previous_response_id": "resp_1"}, prior)
    assert sources.messages == [PRIOR, "input"]


@pytest.mark.parametrize(("text", "said"), [
    ("sampling.max_new_tokens must be at most 32768 (sampling.max_new_tokens; max_tokens, "
     "max_completion_tokens or max_new_tokens over HTTP)",
     "sampling.max_output_tokens must be at most 32768 (sampling.max_output_tokens; "
     "max_output_tokens over HTTP)"),
    ("one of a, b or c", "one of a, b or c"),
])
def test_chat_names_become_the_responses_names_once(text: str, said: str) -> None:
    assert _renamed(text, Sources()) == said
