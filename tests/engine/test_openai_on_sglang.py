"""The mesh on real SGLang (CPU, tiny random-weight model) through the OpenAI-compatible API:
the engine's limits, constrained decoding (JSON schema, tool grammars), sampling parameters,
stop strings and the Responses API."""

from __future__ import annotations

import json
import uuid

import jsonschema
import openai
import pytest

from ostinato.engine_limits import engine_context_length, engine_input_limit
from ostinato.mesh import Mesh
from ostinato.tokenizers import load_renderer, load_tokenizer
from ostinato.tool_formats import get_parser
from ostinato.tool_grammars import answer_or_calls
from tests.engine.conftest import MODEL
from tests.engine.sglang_mesh_helpers import ACME, user
from workers.sglang_client import EngineRequest, SGLangClient

pytestmark = pytest.mark.engine  # `make test-engine`; `make test` deselects it


@pytest.fixture(scope="module")
def acme_openai(sglang_mesh: Mesh) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{sglang_mesh.endpoints.gateway_http}/v1", api_key=ACME,
                         max_retries=0, timeout=300)


def test_the_gateway_refuses_past_sglangs_context_window(sglang_mesh: Mesh,
                                                       acme_openai: openai.OpenAI) -> None:
    """ostinato up read the window from the engine (SGLang's /v1/models max_model_len: the
    tiny model's max_position_embeddings); what does not fit gets OpenAI's error at once."""
    window = engine_context_length(sglang_mesh.endpoints.engines[0])
    assert window > 0
    assert f"context_length: {window}" in (sglang_mesh.workdir / "mesh.yaml").read_text()
    with pytest.raises(openai.BadRequestError) as refused:
        acme_openai.chat.completions.create(model="tiny-llama", messages=user("Hi."),
                                            max_tokens=window)
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert f"maximum context length is {window} tokens" in body["message"]


def test_the_gateway_refuses_a_prompt_past_sglangs_input_limit(sglang_mesh: Mesh,
                                                              acme_openai: openai.OpenAI) -> None:
    """SGLang takes inputs up to its max_req_input_len, a few tokens under the window (and
    far under it where the KV pool is small): `ostinato up` reads it from /get_server_info,
    and a prompt past it gets OpenAI's context_length_exceeded from the gateway, not the
    engine's own 400 (engine review 2026-12-05 F2)."""
    limit = engine_input_limit(sglang_mesh.endpoints.engines[0])
    assert 0 < limit < engine_context_length(sglang_mesh.endpoints.engines[0])
    assert f"max_input_tokens: {limit}" in (sglang_mesh.workdir / "mesh.yaml").read_text()
    renderer, words = load_renderer(f"hf:{MODEL}"), limit
    for _ in range(8):  # a prompt of limit + 1 tokens
        messages = user("word " * words)
        words += limit + 1 - len(renderer.render(messages, None)[1])
    assert len(renderer.render(messages, None)[1]) == limit + 1
    with pytest.raises(openai.BadRequestError) as refused:
        acme_openai.chat.completions.create(model="tiny-llama", messages=messages, max_tokens=1)
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert f"maximum input length is {limit} tokens" in body["message"]


@pytest.mark.parametrize("stream", [True, False])
def test_a_grammar_sglang_cannot_compile_is_a_400_streamed_or_not(acme_openai: openai.OpenAI,
                                                                  stream: bool) -> None:
    """A schema that passes the gateway's check but not xgrammar's compiler: SGLang's
    scheduler refuses it, as a 400 unstreamed and, streamed, as an event finishing with an
    abort whose status_code is 400. Both are the caller's 400 with SGLang's message, run
    once (engine review 2026-12-05 F1: streamed, it was retried three times, then a 503)."""
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}},
              "required": ["a"]}
    with pytest.raises(openai.BadRequestError, match=r"(?i)json grammar"):
        answer = acme_openai.chat.completions.create(
            model="tiny-llama", messages=user(uuid.uuid4().hex), max_tokens=8, stream=stream,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "t", "schema": schema}})
        if stream:
            list(answer)  # type: ignore[arg-type]


def test_json_schema_is_enforced_by_the_engine(acme_openai: openai.OpenAI) -> None:
    """A random-weight model emits a valid instance only because SGLang constrains decoding."""
    # bounded fields: a random model never stops a number or a string by itself
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                               "days": {"enum": [1, 2, 3, 7]}},
              "required": ["city", "days"], "additionalProperties": False}
    out = acme_openai.chat.completions.create(
        model="tiny-llama", messages=user("Plan a trip."), max_tokens=200, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "trip", "schema": schema}})
    # strict=False: xgrammar lets raw control characters into JSON strings (xgrammar #286)
    jsonschema.validate(json.loads(out.choices[0].message.content or "", strict=False), schema)


def test_tools_with_a_json_format_leave_the_model_its_tools(acme_openai: openai.OpenAI) -> None:
    """Tools offered (tool_choice auto) with a JSON response format: SGLang gets our
    structural tag (ostinato/tool_grammars.py), a JSON answer or calls in the model's
    format (llama3 here), and the random-weight model writes one of the two, whole."""
    answer = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
              "required": ["city"], "additionalProperties": False}
    params = {"type": "object", "properties": {"days": {"enum": [1, 2, 3]}},
              "required": ["days"], "additionalProperties": False}
    out = acme_openai.chat.completions.create(
        model="tiny-llama", messages=user("Plan a trip."), max_tokens=400, temperature=0,
        tools=[{"type": "function", "function": {"name": "forecast", "parameters": params}}],
        response_format={"type": "json_schema", "json_schema": {"name": "trip", "schema": answer}})
    message = out.choices[0].message
    if message.tool_calls:  # the calls' branch: read by the llama3 parser
        assert out.choices[0].finish_reason == "tool_calls"
        for call in message.tool_calls:
            assert call.function.name == "forecast"
            jsonschema.validate(json.loads(call.function.arguments), params)
    else:  # (strict=False: xgrammar lets raw control characters into JSON strings)
        jsonschema.validate(json.loads(message.content or "", strict=False), answer)


@pytest.mark.parametrize(("family", "steer"), [
    ("hermes", "<"), ("mistral", "["),  # the calls' first character, not the answer's "{"
    ("qwen3_coder", "<"), ("glm45", "<"), ("deepseekv3", "<"), ("deepseekv31", "<"),
    ("kimi_k2", "<"),
    ("hermes", None), ("llama3", None), ("mistral", None), ("qwen3_coder", None),
    ("glm45", None), ("deepseekv3", None), ("deepseekv31", None), ("kimi_k2", None)])
async def test_every_answer_or_calls_grammar_compiles_in_sglang(sglang_mesh: Mesh, family: str,
                                                                steer: str | None) -> None:
    """Each family's grammar (ostinato/tool_grammars.py) as SGLang's /generate takes it:
    compiled by its xgrammar, and the random model's output is the JSON answer or calls that
    the family's parser reads; steered (logit bias on the calls' first character, which the
    grammar then lets through alone), calls. (gpt-oss's, whose answer is a harmony message
    and whose calls end at stop tokens: tests/engine/test_structural_tags.py.)"""
    answer = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    tools = {"forecast": {"type": "object", "properties": {"days": {"enum": [1, 2]}},
                          "required": ["days"], "additionalProperties": False}}
    tag = answer_or_calls(answer, family, tools, single=True)
    client = SGLangClient(sglang_mesh.endpoints.engines[0])
    try:
        outs = [o async for o in client.generate(EngineRequest(
            rid=uuid.uuid4().hex, text="Plan a trip.", input_ids=None, sampling_params={
                # (room for a call's tags and the blanks the grammar lets in)
                "max_new_tokens": 240, "temperature": 0, "structural_tag": tag,
                "skip_special_tokens": False, "logit_bias": {} if steer is None else {
                    str(load_tokenizer(f"hf:{MODEL}")(steer)[-1]): 100}}), stream=False)]
    finally:
        await client.close()
    text = outs[-1].delta
    calls = get_parser(family).parse(text, tools).tool_calls
    assert calls or steer is None, text
    if calls:
        assert [c.name for c in calls] == ["forecast"]
        jsonschema.validate(json.loads(calls[0].arguments), tools["forecast"])
    else:
        jsonschema.validate(json.loads(text, strict=False), answer)


@pytest.mark.parametrize("seed", [(1 << 64) - 1, -1, 1 << 63, 12345])
def test_every_seed_the_api_takes_reaches_sglang(acme_openai: openai.OpenAI, seed: int) -> None:
    """SGLang takes an int64 sampling_seed (2**64 - 1 was its 400); the worker sends the seed's
    64 bits signed, so OpenAI's -1 and the proto's 2**64 - 1 are one seed."""
    out = acme_openai.chat.completions.create(
        model="tiny-llama", messages=user("Pick a word."), max_tokens=4, temperature=0.8,
        seed=seed)
    assert out.usage is not None and out.usage.completion_tokens >= 1


def test_logit_bias_reaches_sglang_and_steers_its_sampling(acme_openai: openai.OpenAI) -> None:
    """+100 on one token id makes greedy decoding emit only it (a random-weight model's logits
    are a few units apart); an id past the vocabulary is SGLang's 400, and the engine serves on."""
    forced = load_tokenizer(f"hf:{MODEL}")(" ocean")[-1]
    kwargs = {"model": "tiny-llama", "messages": user("Say anything."), "max_tokens": 6,
              "temperature": 0, "logprobs": True}
    plain = acme_openai.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    out = acme_openai.chat.completions.create(  # type: ignore[call-overload]
        **kwargs, logit_bias={str(forced): 100})
    tokens = [t.token for t in out.choices[0].logprobs.content]
    before = [t.token for t in plain.choices[0].logprobs.content]
    assert len(tokens) == 6 and len(set(tokens)) == 1 and tokens != before, (tokens, before)
    with pytest.raises(openai.BadRequestError, match=r"logit_bias must has keys in \[0, \d+\], "
                                                     r"got 999999"):
        acme_openai.chat.completions.create(**kwargs, logit_bias={"999999": 1})
    again = acme_openai.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    assert again.usage is not None and again.usage.completion_tokens == 6


def test_sglangs_sampling_extensions_reach_it(acme_openai: openai.OpenAI) -> None:
    """top_k, min_p, repetition_penalty and min_tokens under SGLang's own names; SGLang takes
    each (its verify() would 400 a misnamed or out-of-range one)."""
    out = acme_openai.chat.completions.create(
        model="tiny-llama", messages=user("Count."), max_tokens=12, temperature=0.7,
        extra_body={"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.3, "min_tokens": 12})
    assert out.usage is not None and out.usage.completion_tokens == 12


def test_chat_template_kwargs_reach_the_models_own_template(acme_openai: openai.OpenAI) -> None:
    """Rendered by the tiny model's Hugging Face template, which reads no such variable: the
    prompt is the same, and the engine answers."""
    kw = {"model": "tiny-llama", "messages": user("Hello."), "max_tokens": 2}
    plain = acme_openai.chat.completions.create(**kw)  # type: ignore[call-overload]
    with_kwargs = acme_openai.chat.completions.create(  # type: ignore[call-overload]
        **kw, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert plain.usage is not None and with_kwargs.usage is not None
    assert with_kwargs.usage.prompt_tokens == plain.usage.prompt_tokens > 0
    # reasoning_effort and SGLang's reasoning switches: the template's variables too
    effort = acme_openai.chat.completions.create(  # type: ignore[call-overload]
        **kw, reasoning_effort="none",
        extra_body={"separate_reasoning": False, "stream_reasoning": False})
    assert effort.usage is not None and effort.usage.prompt_tokens == plain.usage.prompt_tokens


def test_required_tool_choice_yields_a_valid_tool_call(acme_openai: openai.OpenAI) -> None:
    params = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
              "required": ["city"], "additionalProperties": False}
    out = acme_openai.chat.completions.create(
        model="tiny-llama", messages=user("Weather in Paris?"), max_tokens=200, temperature=0,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": params}}],
        tool_choice="required")
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments, strict=False), params)


def test_a_streamed_answer_cut_at_a_stop_string_is_sent_once(acme_openai: openai.OpenAI) -> None:
    """SGLang's last event drops a matched stop string, so its text can be shorter than what
    streamed; the worker holds back what may begin one (workers/streamed_text.py): the
    streamed pieces join to the final text, with no stop string and nothing sent twice. A
    random-weight model writes "e" soon; a stop of two letters often splits across tokens."""
    stopped = []
    for stop in ("e", "er", "th"):
        kw = {"model": "tiny-llama", "messages": user(f"Tell me about {stop}."), "max_tokens": 150,
              "temperature": 0, "stop": [stop]}
        whole = acme_openai.chat.completions.create(**kw).choices[0]
        chunks = list(acme_openai.chat.completions.create(**kw, stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == (whole.message.content or "")
        if whole.finish_reason == "stop":
            assert stop not in streamed
            stopped.append(stop)
    assert stopped  # the case the test is for happened


def test_the_responses_api_on_real_sglang(acme_openai: openai.OpenAI) -> None:
    """POST /v1/responses (the Agents SDK's default model) with the engine's constrained
    decoding: structured output, a forced function call, and streamed events that build the
    same text as the final response."""
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                               "days": {"enum": [1, 2, 3, 7]}},
              "required": ["city", "days"], "additionalProperties": False}
    out = acme_openai.responses.create(
        model="tiny-llama", input="Plan a trip.", max_output_tokens=200, temperature=0,
        text={"format": {"type": "json_schema", "name": "trip", "schema": schema}})
    jsonschema.validate(json.loads(out.output_text, strict=False), schema)
    params = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
              "required": ["city"], "additionalProperties": False}
    called = acme_openai.responses.create(
        model="tiny-llama", input="Weather in Paris?", max_output_tokens=200, temperature=0,
        tools=[{"type": "function", "name": "get_weather", "parameters": params}],
        tool_choice="required")
    calls = [i for i in called.output if i.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    jsonschema.validate(json.loads(calls[0].arguments, strict=False), params)
    events = list(acme_openai.responses.create(model="tiny-llama", input=uuid.uuid4().hex,
                                               max_output_tokens=16, temperature=0, stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1]
    assert final.type in ("response.completed", "response.incomplete")
    assert deltas == final.response.output_text  # type: ignore[union-attr]
