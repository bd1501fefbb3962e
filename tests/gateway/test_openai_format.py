"""OpenAI request JSON -> CallSpec: what agent frameworks send is taken (null for a field
left out, an assistant message echoed back with OpenAI's extra fields); a field of the wrong
type is refused (400), never coerced or dropped. Table-driven."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.calls import CallLimits, normalize_call
from gateway.openai_format import (
    BadRequest,
    call_from_completion,
    call_from_openai,
    completion_prompts,
    streams_reasoning,
    wants_stream,
)
from ostinato.sdk_types import call_spec

USER = [{"role": "user", "content": "hi"}]
ECHOED = {"role": "assistant", "content": None, "refusal": None, "annotations": [],
          "audio": None, "function_call": None, "tool_calls": [
              {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


@pytest.mark.parametrize("body", [
    {"messages": USER, "stream": None, "stream_options": None, "logprobs": None, "n": None,
     "max_tokens": None, "tools": None, "tool_choice": None, "response_format": None},
    {"messages": [*USER, ECHOED, {"role": "tool", "tool_call_id": "c1", "content": "1"}]},
    {"messages": [{"role": "user", "content": "hi", "tool_calls": None, "name": None}]},
    {"messages": USER, "service_tier": "flex", "store": True, "metadata": {"run": "r"}},
    {"messages": USER, "tools": [{"type": "function", "function": {
        "name": "f", "description": None, "strict": None, "parameters": None}}]},
    {"messages": USER, "response_format": {"type": "json_schema", "json_schema": {
        "name": None, "strict": None, "schema": {"type": "object"}}}},
    {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"},
                                                         "type": None, "id": None}]}]},
    {"messages": USER, "top_p": 1e-300},  # below float32's range: its smallest value
    {"messages": USER, "ostinato": {"expected_output_tokens": 2**40}},  # a hint, clamped
    {"messages": USER, "modalities": ["text"]},  # OpenAI's default, sent by some clients
    {"messages": USER, "modalities": None},
    # OpenAI's prompt cache and moderation settings, GPT-5's verbosity: without effect here
    {"messages": USER, "prompt_cache_key": "agent-7", "prompt_cache_retention": "24h",
     "prompt_cache_options": {"x": 1},
     "safety_identifier": "u-1", "verbosity": "low"},
])
def test_taken(body: dict[str, Any]) -> None:
    call_from_openai(body, None)
    wants_stream(body)


@pytest.mark.parametrize("api", ["http", "grpc"])
def test_openais_top_p_of_0_is_the_smallest_nucleus_sglang_takes(api: str) -> None:
    """OpenAI's range is [0, 1], SGLang's (0, 1]: 0 (the likeliest token only) was a 400
    (framework review F5; over gRPC and the SDK too, the diff review's); it is the smallest
    float32 above 0, which keeps one token."""
    call = call_from_openai({"messages": USER, "top_p": 0}, None) if api == "http" else \
        call_spec(messages=USER, top_p=0)
    sp = normalize_call(call, CallLimits(1000, 8, 64, 512)).sampling
    assert 0.0 < sp.top_p < 1e-30


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": [], "content": "x"}]}, "messages"),  # was a 500 (unhashable)
    # a tool message names the call it answers (OpenAI's schema requires tool_call_id)
    ({"messages": [*USER, ECHOED, {"role": "tool", "content": "1"}]}, "messages"),
    ({"messages": [*USER, ECHOED, {"role": "tool", "tool_call_id": "", "content": "1"}]},
     "messages"),
    ({"messages": [*USER, ECHOED, {"role": "tool", "tool_call_id": None, "content": "1"}]},
     "messages"),
    ({"messages": [{"role": "assistant", "tool_calls": {}}]}, "messages"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": 5, "function": {"name": "f"}}]}]}, "messages"),
    ({"messages": USER, "tools": [{"type": "function", "function": {
        "name": "f", "strict": "yes"}}]}, "tools"),
    ({"messages": USER, "tools": [{"type": "function", "function": {
        "name": "f", "description": 0}}]}, "tools"),
    ({"messages": USER, "response_format": {"type": "json_schema", "json_schema": {
        "name": 1, "schema": {}}}}, "response_format"),
    ({"messages": USER, "logprobs": 2}, "logprobs"),  # a count is /v1/completions'
    ({"messages": USER, "max_tokens": 0, "max_completion_tokens": 4}, "max_tokens"),
    ({"messages": USER, "max_tokens": 2**40}, "max_tokens"),  # was a 500 (uint32)
    ({"messages": USER, "seed": 2**64}, "seed"),  # was a 500 (uint64)
    ({"messages": USER, "seed": -(2**63) - 1}, "seed"),  # below OpenAI's int64
    ({"messages": USER, "modalities": ["text", "audio"]}, "modalities"),
    ({"messages": USER, "modalities": "text"}, "modalities"),
    ({"messages": USER, "top_k": 0}, "top_k"),  # SGLang's: -1 or at least 1
    ({"messages": USER, "top_k": -2}, "top_k"),
    ({"messages": USER, "top_k": 2**31}, "top_k"),
    ({"messages": USER, "top_k": 1.5}, "top_k"),
    ({"messages": USER, "min_p": 1.01}, "min_p"),
    ({"messages": USER, "min_p": -0.1}, "min_p"),
    ({"messages": USER, "repetition_penalty": 0}, "repetition_penalty"),
    ({"messages": USER, "repetition_penalty": 2.5}, "repetition_penalty"),
    ({"messages": USER, "min_tokens": -1}, "min_tokens"),
    ({"messages": USER, "min_tokens": 2**32}, "min_tokens"),
    ({"messages": USER, "ignore_eos": "yes"}, "ignore_eos"),
    ({"messages": USER, "chat_template_kwargs": "enable_thinking"}, "chat_template_kwargs"),
    ({"messages": USER, "reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"messages": USER, "reasoning_effort": 0.5}, "reasoning_effort"),
    ({"messages": USER, "reasoning_effort": True}, "reasoning_effort"),
    ({"messages": USER, "reasoning_effort": ["low"]}, "reasoning_effort"),
    ({"messages": USER, "separate_reasoning": "no"}, "separate_reasoning"),
    ({"messages": USER, "stream_reasoning": 0}, "stream_reasoning"),
    ({"messages": USER, "service_tier": "bogus"}, "service_tier"),  # taken, but only OpenAI's
    ({"messages": USER, "metadata": {"k" * 65: "v"}}, "metadata"),  # as the Responses API's
    ({"messages": USER, "metadata": {"k": 1}}, "metadata"),
    ({"messages": USER, "store": "yes"}, "store"),
    ({"messages": USER, "logit_bias": [1]}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"x": 1}}, "logit_bias"),  # a key is a token id
    ({"messages": USER, "logit_bias": {"-1": 1}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"007": 1}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"1" * 20: 1}}, "logit_bias"),  # past the proto's uint64
    ({"messages": USER, "logit_bias": {"1": 100.00000000000001}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"1": -101}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"1": True}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"1": "5"}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {"1": float("nan")}}, "logit_bias"),
    ({"messages": USER, "logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
    ({"messages": USER, "top_p": -0.1}, "top_p"),
    ({"messages": USER, "top_p": 1.5}, "top_p"),
    ({"messages": USER, "temperature": 2.5}, "temperature"),
])
def test_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as exc:
        call_from_openai(body, None)
    assert exc.value.param == param


@pytest.mark.parametrize(("route", "fields", "sampling"), [
    ("chat", {"top_k": 20, "min_p": 0.0, "repetition_penalty": 1.05, "min_tokens": 3},
     {"top_k": 20, "min_p": 0.0, "repetition_penalty": 1.05, "min_new_tokens": 3}),
    ("chat", {"top_k": -1, "min_p": 1, "repetition_penalty": 2, "ignore_eos": True},
     {"top_k": -1, "min_p": 1.0, "repetition_penalty": 2.0, "ignore_eos": True}),
    ("chat", {"top_k": None, "min_p": None, "repetition_penalty": None, "min_tokens": None,
              "ignore_eos": None}, {}),
    ("completion", {"top_k": 1, "min_tokens": 0, "ignore_eos": False},
     {"top_k": 1, "min_new_tokens": 0}),
])
def test_sglangs_sampling_extensions_are_taken(route: str, fields: dict[str, Any],
                                                sampling: dict[str, Any]) -> None:
    """What clients send SGLang's OpenAI server as extra_body (Qwen's top_k, bench ignore_eos)."""
    body = {"messages": USER} if route == "chat" else {"prompt": "p"}
    call = (call_from_openai if route == "chat" else call_from_completion)({**body, **fields}, None)
    sp = call.sampling
    got = {f.name: v for f, v in sp.ListFields()}
    assert {k: pytest.approx(v) for k, v in got.items()} == sampling


@pytest.mark.parametrize(("route", "bias", "sent"), [
    ("chat", None, {}),
    ("chat", {}, {}),
    ("chat", {"50256": -100, "0": 100, "9999999999999999999": 0.5}, {
        50256: -100.0, 0: 100.0, 9999999999999999999: 0.5}),
    ("chat", {"1\n": 1}, {1: 1.0}),  # as the OpenAPI pattern's `$` matches it
    ("chat", {str(i): -1 for i in range(300)}, {i: -1.0 for i in range(300)}),
    ("completion", {"13": 2.5}, {13: 2.5}),
])
def test_logit_bias_maps_token_ids_to_biases(route: str, bias: object,
                                             sent: dict[int, float]) -> None:
    body = {"messages": USER} if route == "chat" else {"prompt": "p"}
    call = (call_from_openai if route == "chat" else call_from_completion)(
        {**body, "logit_bias": bias}, None)
    assert dict(call.sampling.logit_bias) == sent


@pytest.mark.parametrize(("seed", "sent"), [
    (0, 0), (7, 7), (2**64 - 1, 2**64 - 1), (-1, 2**64 - 1), (-(2**63), 2**63)])
def test_seed_takes_openais_int64_and_any_uint64(seed: int, sent: int) -> None:
    """OpenAI's seed is an int64 (frameworks pass negative ones through); the engine's is
    unsigned: a negative seed is taken modulo 2**64, the same answer for the same seed."""
    assert call_from_openai({"messages": USER, "seed": seed}, None).sampling.seed == sent


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": USER, "stream": 1}, "stream"),
    ({"messages": USER, "stream_options": ""}, "stream_options"),
    ({"messages": USER, "stream_options": {"include_usage": "yes"}}, "stream_options"),
    # only with stream true (as OpenAI refuses it)
    ({"messages": USER, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"messages": USER, "stream": False, "stream_options": {}}, "stream_options"),
    ({"messages": USER, "stream": True, "stream_options": {"bogus": 1}}, "stream_options"),
    ({"messages": USER, "stream": True, "stream_options": {"include_obfuscation": "no"}},
     "stream_options"),
])
def test_stream_options_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as exc:
        wants_stream(body)
    assert exc.value.param == param


@pytest.mark.parametrize(("logprobs", "asked", "top"), [
    (None, False, 0),
    (0, True, 0),  # the sampled tokens' logprobs, no alternatives (OpenAI: "always returns
                   # the logprob of the sampled token")
    (3, True, 3), (20, True, 20)])
def test_completion_logprobs_is_a_count(logprobs: int | None, asked: bool, top: int) -> None:
    call = call_from_completion({"prompt": "p", "logprobs": logprobs}, None)
    assert call.logprobs == asked and call.top_logprobs == top


@pytest.mark.parametrize("logprobs", [True, -1, 21, 1.5])
def test_completion_logprobs_refused(logprobs: object) -> None:
    with pytest.raises(BadRequest):
        call_from_completion({"prompt": "p", "logprobs": logprobs}, None)


@pytest.mark.parametrize(("route", "body"), [
    ("chat", {"messages": USER, "logit_bias": None, "functions": None, "audio": None,
              "prediction": None, "reasoning_effort": None, "web_search_options": None}),
    ("chat", {"messages": USER, "functions": [], "function_call": "none"}),
    ("completion", {"prompt": "p", "echo": False, "best_of": 1, "suffix": None}),
    ("completion", {"prompt": "p", "best_of": 1.0, "suffix": ""}),
])
def test_an_unsupported_field_asking_for_nothing_is_taken(route: str, body: dict[str, Any]) -> None:
    """What clients that send every field send (`echo: false`, `functions: null`)."""
    (call_from_openai if route == "chat" else call_from_completion)(body, None)


@pytest.mark.parametrize(("route", "body", "param"), [
    ("chat", {"messages": USER, "functions": [{"name": "f"}]}, "functions"),
    ("chat", {"messages": USER, "function_call": "auto"}, "function_call"),
    ("chat", {"messages": USER, "web_search_options": {}}, "web_search_options"),  # turns it on
    ("completion", {"prompt": "p", "echo": True}, "echo"),
    ("completion", {"prompt": "p", "echo": 0}, "echo"),  # JSON's 0 is not false
    ("completion", {"prompt": "p", "best_of": 2}, "best_of"),
    ("completion", {"prompt": "p", "best_of": True}, "best_of"),  # nor is true 1
    ("completion", {"prompt": "p", "suffix": " end"}, "suffix"),
])
def test_an_unsupported_field_asking_for_something_is_refused(route: str, body: dict[str, Any],
                                                              param: str) -> None:
    with pytest.raises(BadRequest, match="not supported by this gateway") as exc:
        (call_from_openai if route == "chat" else call_from_completion)(body, None)
    assert exc.value.param == param


def test_chat_template_kwargs_go_as_json_and_only_with_messages() -> None:
    call = call_from_openai({"messages": USER, "chat_template_kwargs": {
        "enable_thinking": False, "é": [1]}}, None)
    assert json.loads(call.chat_template_kwargs) == {"enable_thinking": False, "é": [1]}
    assert call_from_openai({"messages": USER, "chat_template_kwargs": None}, None) \
        .chat_template_kwargs == ""
    with pytest.raises(BadRequest, match="unknown field") as exc:
        call_from_completion({"prompt": "p", "chat_template_kwargs": {}}, None)
    assert exc.value.param == "chat_template_kwargs"


@pytest.mark.parametrize(("body", "effort", "in_text", "streamed"), [
    ({}, "", False, True),
    ({"reasoning_effort": None, "separate_reasoning": None, "stream_reasoning": None},
     "", False, True),
    ({"reasoning_effort": "none"}, "none", False, True),
    ({"reasoning_effort": "xhigh", "separate_reasoning": True}, "xhigh", False, True),
    ({"reasoning_effort": "max", "separate_reasoning": False}, "max", True, True),
    ({"stream_reasoning": False}, "", False, False),
])
def test_reasoning_fields(body: dict[str, Any], effort: str, in_text: bool,
                          streamed: bool) -> None:
    call = call_from_openai({"messages": USER, **body}, None)
    assert (call.reasoning_effort, call.reasoning_in_text) == (effort, in_text)
    assert streams_reasoning(body) is streamed


@pytest.mark.parametrize("name", ["reasoning_effort", "separate_reasoning", "stream_reasoning"])
def test_reasoning_fields_are_for_chat_only(name: str) -> None:
    with pytest.raises(BadRequest, match="unknown field") as exc:
        call_from_completion({"prompt": "p", name: None}, None)
    assert exc.value.param == name


@pytest.mark.parametrize(("prompt", "prompts"), [
    ("p", ["p"]),
    (["p"], ["p"]),  # what LangChain's OpenAI class sends
    (["a", "b"], ["a", "b"]),
    (["x"] * 20, ["x"] * 20),
])
def test_completion_prompts(prompt: object, prompts: list[str]) -> None:
    assert completion_prompts({"prompt": prompt}) == prompts
    assert call_from_completion({"prompt": prompt}, None).prompt == prompts[0]


@pytest.mark.parametrize(("prompt", "says"), [
    (None, "prompt must be"), ("", "prompt must be"), ([], "prompt must be"),
    (["a", ""], "prompt must be"), (["a", 1], "prompt must be"), (["x"] * 21, "1 to 20"),
    ([1, 2, 3], "token-id prompts"), ([[1, 2], [3]], "token-id prompts"),
])
def test_completion_prompts_refused(prompt: object, says: str) -> None:
    with pytest.raises(BadRequest) as exc:
        completion_prompts({"prompt": prompt})
    assert exc.value.param == "prompt" and says in str(exc.value)


def test_an_assistants_refusal_parts_are_its_text_and_no_one_elses() -> None:
    """HTTP API review 2026-12-05 F6: OpenAI takes an assistant message's refusal parts (as
    the openai SDK's ChatCompletionAssistantMessageParam allows); they were a 400."""
    said = [{"type": "text", "text": "I can't "}, {"type": "refusal", "refusal": "do that."}]
    call = call_from_openai({"messages": [*USER, {"role": "assistant", "content": said},
                                          *USER]}, None)
    assert call.messages[1].content == "I can't do that."
    with pytest.raises(BadRequest, match=r"messages\[0\]\.content\[1\]: only text parts"):
        call_from_openai({"messages": [{"role": "user", "content": said}]}, None)
