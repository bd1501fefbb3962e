"""The simulated model uses tools like a model does: it reads its prompt from token ids, calls
a declared tool after a user turn (in the configured family's format), answers in text after
a tool result, and honours a JSON schema. Deterministic."""

from __future__ import annotations

import json

import jsonschema
import pytest

from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tokenizers import load_renderer
from ostinato.tool_formats import get_parser
from ostinato.tool_grammars import answer_or_calls
from workers.sim.behavior import THINKING_WORDS, scripted_answer, thinking
from workers.sim.chat_template import declared_tools, last_turn_role, reasoning_effort_of, render
from workers.sim.generate_request import BadRequest, parse_generate
from workers.sim.text import Decoder
from workers.sim.tokenizer import tokenize

SEARCH = {"type": "object", "properties": {"query": {"type": "string"}, "k": {
    "type": "integer", "minimum": 1, "maximum": 5}}, "required": ["query", "k"]}
TOOLS = [{"type": "function", "function": {"name": "search", "description": "search files",
                                           "parameters": SEARCH}},
         {"type": "function", "function": {"name": "calc", "parameters": {
             "type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}}}]
USER = [{"role": "user", "content": "Find the report."}]


@pytest.mark.parametrize("family", ["hermes", "qwen25", "llama3", "mistral"])
def test_after_a_user_turn_it_calls_a_declared_tool(family: str) -> None:
    prompt = render(USER, TOOLS, tool_format=family)
    answer = scripted_answer(prompt, json_schema=None, tool_format=family)
    assert answer is not None
    parsed = get_parser(family).parse(answer, frozenset({"search", "calc"}))
    assert len(parsed.tool_calls) == 1 and parsed.content == ""
    call = parsed.tool_calls[0]
    schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.name)
    jsonschema.validate(json.loads(call.arguments), schema)
    assert answer == scripted_answer(prompt, json_schema=None, tool_format=family)  # deterministic


@pytest.mark.parametrize(("params", "calls"), [
    ({"title": "untyped"}, True),  # says nothing of its type: the arguments are an object
    ({"type": ["string", "object"], "properties": {"a": {"type": "integer"}}}, True),
    ({"$defs": {"A": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/A"}},
      "required": ["a"]}, True),
    (None, True),
    ({"type": "string"}, False),  # admits no object: no call a parser would take
])
def test_a_call_s_arguments_are_an_object(params: object, calls: bool) -> None:
    tool = {"type": "function", "function": {"name": "t", **(
        {} if params is None else {"parameters": params})}}
    for seed in range(8):
        answer = scripted_answer(render(USER, [tool]), json_schema=None, tool_format="hermes",
                                 seed=seed)
        if not calls:
            assert answer is None
            continue
        assert answer is not None
        [call] = get_parser("hermes").parse(answer, frozenset({"t"})).tool_calls
        arguments = json.loads(call.arguments)
        assert isinstance(arguments, dict)
        if isinstance(params, dict):
            jsonschema.validate(arguments, params)


def test_after_a_tool_result_it_answers_in_text() -> None:
    messages = [*USER, {"role": "assistant", "content": "", "tool_calls": [{"function": {
        "name": "search", "arguments": {"query": "report", "k": 1}}}]},
        {"role": "tool", "content": "report.txt: Q3 revenue grew."}]
    prompt = render(messages, TOOLS)
    assert last_turn_role(prompt) == "tool"
    assert scripted_answer(prompt, json_schema=None, tool_format="hermes") is None


def test_without_tools_it_answers_in_text() -> None:
    assert scripted_answer(render(USER), json_schema=None, tool_format="hermes") is None
    assert declared_tools(render(USER)) == []


def test_under_a_json_schema_it_emits_a_valid_instance() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {
        "type": "array", "items": {"enum": ["a", "b"]}}}, "required": ["name", "tags"]}
    answer = scripted_answer(render(USER), json_schema=json.dumps(schema), tool_format="hermes")
    jsonschema.validate(json.loads(answer or ""), schema)


def test_the_engine_reads_input_ids_as_a_real_one_does() -> None:
    prompt = render(USER, TOOLS)
    [req] = parse_generate({"input_ids": tokenize(prompt), "sampling_params": {}}, "llama3")
    assert req.script is not None and req.script.startswith("<|python_tag|>{")


@pytest.mark.parametrize(("sp", "needle"), [
    ({"regex": "a+"}, "regex is not supported"),
    ({"json_schema": "{}", "structural_tag": "{}"}, "Only one of json_schema"),
    ({"structural_tag": "{not json"}, "structural_tag is not valid JSON"),
    ({"structural_tag": json.dumps({"structures": [], "triggers": []})}, "legacy"),
    ({"structural_tag": json.dumps({"type": "structural_tag", "format": {"type": "regex"}})},
     "format 'regex'"),
    ({"json_schema": '{"type": "string", "pattern": "^(?=a)"}'}, "pattern"),  # lookarounds
    ({"json_schema": "{not json"}, "not valid JSON"),
    ({"presence_penalty": 3}, "presence_penalty"),
])
def test_constraints_it_cannot_honour_are_refused(sp: dict, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        parse_generate({"text": "hi", "sampling_params": sp})


@pytest.mark.parametrize(("bias", "needle"), [
    ({"x": 1}, "invalid literal for int"),  # SGLang's int(token_id)
    ({"-1": 1}, r"logit_bias must has keys in \[0, 18446744073709551615\], got -1\."),
    ({str(1 << 64): 1}, "logit_bias must has keys in"),
    ({"5": "big"}, r"logit_bias\[5\] must be a number"),
    ([5], "logit_bias must be an object"),
])
def test_logit_bias_is_checked_as_sglang_checks_it(bias: object, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        parse_generate({"text": "hi", "sampling_params": {"logit_bias": bias}})


def test_a_logit_bias_within_the_vocabulary_is_taken() -> None:
    [req] = parse_generate({"text": "hi", "sampling_params": {
        "logit_bias": {"0": -100, str((1 << 64) - 1): 100, "17": 0.5}}})
    assert req.rid


@pytest.mark.parametrize(("sp", "needle"), [  # SGLang's SamplingParams.verify, word for word
    ({"top_k": 0}, r"top_k must be -1 \(disable\) or at least 1, got 0\."),
    ({"min_p": 1.5}, r"min_p must be in \[0, 1\], got 1.5\."),
    ({"repetition_penalty": 0}, r"repetition_penalty must be in \(0, 2\] \(1.0 = no penalty\)"),
    ({"min_new_tokens": 9, "max_new_tokens": 8},
     r"min_new_tokens must be in \[0, max_new_tokens\(8\)\], got 9\."),
    ({"min_new_tokens": 1.5}, "sampling_params.min_new_tokens must be a number"),
    ({"top_k": "5"}, "sampling_params.top_k must be a number"),
])
def test_sglangs_sampling_ranges_are_checked_in_its_words(sp: dict, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        parse_generate({"text": "hi", "sampling_params": sp})


@pytest.mark.parametrize("least", [0, 50, 120])
def test_no_end_of_sequence_before_min_new_tokens(least: int) -> None:
    """The sim model's natural lengths are 4 to 95 tokens: 120 is past every one of them."""
    [req] = parse_generate({"text": "hi there", "sampling_params": {
        "max_new_tokens": 200, "min_new_tokens": least}})
    assert req.min_new_tokens == least
    decoder = Decoder(req.prompt_ids, max_new_tokens=200, min_new_tokens=least)
    decoder.advance(300)
    assert decoder.finish_reason is not None and decoder.finish_reason["type"] == "stop"
    assert decoder.completion_tokens >= max(least, 4)


@pytest.mark.parametrize(("fmt", "opens"), [("qwen3", "<think>\n"), ("kimi", "◁think▷\n"),
                                            ("deepseek-r1", "")])  # r1's template opens it
def test_a_thinking_model_thinks_before_answering_a_chat_turn(fmt: str, opens: str) -> None:
    prompt = render([{"role": "user", "content": "Why?"}])
    thought = thinking(prompt, fmt, seed=1)
    end = REASONING_FORMATS[fmt].end
    assert thought.startswith(opens) and thought.endswith("\n" + end + "\n\n")
    assert 6 <= len(thought.removeprefix(opens).split()) <= 30
    assert thought == thinking(prompt, fmt, seed=1) != thinking(prompt, fmt, seed=2)
    assert thinking(prompt, "", seed=1) == ""  # a model that does not think
    quiet = render([{"role": "user", "content": "Why?"}], enable_thinking=False)
    assert quiet.endswith("<think>\n\n</think>\n\n") and last_turn_role(quiet) == "user"
    assert thinking(quiet, fmt, seed=1) == ""  # told not to think (Qwen3's template)
    harmony = render([{"role": "user", "content": "Why?"}], tool_format="gpt-oss",
                     enable_thinking=False)  # gpt-oss's template has no switch: it thinks
    assert harmony == render([{"role": "user", "content": "Why?"}], tool_format="gpt-oss")
    assert thinking(harmony, "gpt-oss", seed=1)
    assert thinking("Once upon a time", fmt) == ""  # a raw prompt is no chat turn


def test_the_thinking_comes_before_the_answer_in_the_output() -> None:
    prompt = render([{"role": "user", "content": "Why?"}])
    [req] = parse_generate({"text": prompt, "sampling_params": {"max_new_tokens": 500}},
                           "hermes", "qwen3")
    decoder = Decoder(tokenize(prompt), max_new_tokens=500, preamble=req.preamble)
    decoder.advance(600)
    head, _, answer = decoder.text.partition("</think>\n\n")
    assert head == req.preamble.removesuffix("</think>\n\n") and answer.strip()


WHY = [{"role": "user", "content": "Why?"}]
BRIEF = [{"role": "system", "content": "Be brief."}, *WHY]


def _thought_words(thought: str, fmt: str) -> int:
    tags = REASONING_FORMATS[fmt]
    return len(thought.removeprefix(tags.start).removesuffix(tags.end + "\n\n").split())


@pytest.mark.parametrize(("messages", "tools", "effort", "system"), [
    (WHY, None, "high", "Reasoning: high"),  # a system turn made for it
    (BRIEF, None, "low", "Reasoning: low\n\nBe brief."),  # the caller's system message after it
    (BRIEF, TOOLS[:1], "max", "Reasoning: max\n\nBe brief.\n\n# Tools"),
    (WHY, TOOLS[:1], "none", "Reasoning: none\n\n# Tools"),  # written as given, as Jinja does
    (WHY, None, "extreme", "Reasoning: extreme"),  # a caller's chat_template_kwargs: as given
])
def test_the_template_writes_the_effort_as_gpt_oss_does(
        messages: list, tools: list | None, effort: str, system: str) -> None:
    prompt = render(messages, tools, reasoning_effort=effort)
    assert prompt.startswith("<|im_start|>system\n" + system)
    assert reasoning_effort_of(prompt) == effort and last_turn_role(prompt) == "user"
    assert declared_tools(prompt) == [t["function"] for t in tools or ()]
    assert prompt.count("<|im_start|>system\n") == 1


@pytest.mark.parametrize(("messages", "tools"), [(WHY, None), (BRIEF, None), (BRIEF, TOOLS)])
@pytest.mark.parametrize("effort", [None, ""])
def test_without_an_effort_the_prompt_is_as_before(messages: list, tools: list | None,
                                                   effort: str | None) -> None:
    prompt = render(messages, tools, reasoning_effort=effort)
    assert prompt == render(messages, tools) and reasoning_effort_of(prompt) == ""
    assert prompt.startswith("<|im_start|>system\nBe brief.") is (messages is BRIEF)


@pytest.mark.parametrize(("messages", "fmt", "seed", "expected"), [  # what the model wrote before
    (WHY, "qwen3", 1, "<think>\nWhat the a the the tool is helps is is a.\n</think>\n\n"),
    (BRIEF, "kimi", 3, "◁think▷\nIs whether what first asks the known is user and briefly first "
     "then tool what so asks answer first tool known asks is decide so and check.\n◁/think▷\n\n"),
])
def test_without_an_effort_the_thinking_is_as_before(messages: list, fmt: str, seed: int,
                                                     expected: str) -> None:
    tools = [{"type": "function", "function": {"name": "s"}}] if messages is BRIEF else None
    assert thinking(render(messages, tools), fmt, seed) == expected


@pytest.mark.parametrize(("effort", "fewest", "most"), [
    ("minimal", 2, 7), ("low", 3, 14), ("medium", 6, 29), (None, 6, 29),  # the model's default
    ("extreme", 6, 29),  # an effort it does not know: its default
    ("none", 2, 7),  # thinking switched back on (enable_thinking true): as briefly as minimal
    ("high", 24, 119), ("xhigh", 48, 239), ("max", 96, 479)])
@pytest.mark.parametrize("fmt", ["qwen3", "deepseek-r1"])
def test_the_thinking_is_as_long_as_the_effort_asks(effort: str | None, fewest: int, most: int,
                                                    fmt: str) -> None:
    prompt = render(WHY, reasoning_effort=effort)
    counts = [_thought_words(thinking(prompt, fmt, seed), fmt) for seed in range(200)]
    assert fewest <= min(counts) and max(counts) <= most
    assert max(counts) - min(counts) > (most - fewest) // 2  # spread over the range
    assert thinking(prompt, fmt, 5) == thinking(prompt, fmt, 5)  # deterministic
    assert THINKING_WORDS.get(effort or "medium", THINKING_WORDS["medium"]) == (fewest, most)


def test_harder_efforts_think_longer() -> None:
    efforts = ["minimal", "low", "medium", "high", "xhigh", "max"]
    means = [sum(_thought_words(thinking(render(WHY, reasoning_effort=e), "qwen3", seed), "qwen3")
                 for seed in range(100)) / 100 for e in efforts]
    assert means == sorted(means) and means[3] > 3 * means[2]  # high: several times medium's


@pytest.mark.parametrize(("template_kwargs", "fewest", "most"), [  # as the gateway gives them
    ({"reasoning_effort": "none", "thinking": False, "enable_thinking": False}, 0, 0),
    ({"reasoning_effort": "none", "thinking": False, "enable_thinking": True}, 2, 7),
    ({"reasoning_effort": "low", "thinking": True, "enable_thinking": True}, 3, 14),
    ({"reasoning_effort": "high", "thinking": True, "enable_thinking": True}, 24, 119),
    ({"enable_thinking": False}, 0, 0),
    ({}, 6, 29),
])
def test_the_effort_reaches_the_engine_through_the_prompts_ids(
        template_kwargs: dict, fewest: int, most: int) -> None:
    """The sim renderer passes the effort to the template; the engine reads it back from the
    input ids, as a real engine's model does; effort none (enable_thinking false): no thinking."""
    _, ids = load_renderer("sim").render(WHY, None, template_kwargs)
    for seed in range(20):
        body = {"input_ids": ids, "sampling_params": {"sampling_seed": seed}}
        [req] = parse_generate(body, "hermes", "qwen3")
        assert fewest <= _thought_words(req.preamble, "qwen3") <= most
        assert (req.preamble == "") is (most == 0)


@pytest.mark.parametrize("family", ["hermes", "qwen25", "llama3", "mistral", "qwen3_coder",
                                    "glm45"])
@pytest.mark.parametrize("single", [False, True])
def test_under_a_json_answer_or_calls_grammar_it_still_uses_its_tools(family: str,
                                                                       single: bool) -> None:
    """The gateway's grammar for tools with a JSON response format (ostinato/tool_grammars.py):
    after a user turn the model calls a tool, in its family's format, which the family's
    parser reads back; after a tool result it answers with JSON of the format."""
    answer_schema = {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]}
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    tag = answer_or_calls(answer_schema, family, tools, single)
    assert tag is not None
    prompt = render(USER, TOOLS, tool_format=family)
    called = scripted_answer(prompt, json_schema=None, tool_format=family, structural_tag=tag)
    parsed = get_parser(family).parse(called or "", tools)
    assert len(parsed.tool_calls) == 1 and parsed.content == ""
    jsonschema.validate(json.loads(parsed.tool_calls[0].arguments),
                        tools[parsed.tool_calls[0].name])
    after = render([*USER, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}], TOOLS, tool_format=family)
    answered = scripted_answer(after, json_schema=None, tool_format=family, structural_tag=tag)
    jsonschema.validate(json.loads(answered or ""), answer_schema)


@pytest.mark.parametrize(("sampling", "alike"), [
    ({"temperature": 0.0}, True), ({"top_k": 1}, True),  # greedy: the seed changes nothing
    ({"temperature": 0.7}, False), ({}, False),
])
def test_greedy_samples_are_the_same_whatever_the_seed(sampling: dict, alike: bool) -> None:
    """API review 2026-12-06: n greedy choices differed (each sample's seed moved the text),
    where a real engine's greedy decoding gives n identical ones."""
    reqs = parse_generate({"text": "Tell me about the sea.", "sampling_params": {
        "max_new_tokens": 24, "n": 3, "sampling_seed": 5, **sampling}})
    seeds = {r.seed for r in reqs}
    assert (len(seeds) == 1) is alike
