"""Constrained decoding that leaves the model its tools: a JSON answer, or tool calls.

OpenAI takes `tools` with tool_choice auto together with a JSON `response_format`: the model
either calls tools, or answers with JSON of that format (an OpenAI Agents SDK agent with
tools and an output type sends both on every turn). A plain `json_schema` constraint, as
SGLang's server applies it for such a request, lets the model write only the JSON: it can
never call a tool. Here the engine gets a structural tag instead (xgrammar's, which SGLang
0.5 takes as `sampling_params.structural_tag`): one of two branches from the first token,
the JSON answer, or one or more calls in the model's own format, each call's arguments
constrained by its tool's parameters (SGLang's detectors' `structure_info` write the same
begin and end strings).

Families whose calls are JSON between fixed strings have such a grammar: hermes / qwen25,
llama3, mistral; so do qwen3_coder and glm45, which write each argument in its own tags,
through xgrammar's XML styles of a JSON schema (`qwen_xml`, `glm_xml`; what these cannot
say is noted above _qwen3_coder). The special-token sections (deepseekv3, deepseekv31,
kimi_k2) are laid out as xgrammar's own builtin tags for those models (`deepseek_r1`, whose
calls are V3's, `deepseek_v3_1`, `kimi`; SGLang 0.5.23 asks xgrammar for `kimi` under a
required or strict tool choice, and takes DeepSeek's calls' begin and end strings from its
detectors' `structure_info`, the same), their tokens those of SGLang's detectors and our
renderers (ostinato/tool_format_special.py). gpt-oss's harmony messages have their own
grammar (_gpt_oss: the answer in the final channel, a call in commentary to=functions.NAME,
each ended by the model's stop token, not by a string). Every model family has one
(json_array, for forced calls only, has none); a family without one would get None, and the
JSON constraint alone (the model answers, calls no tool: docs/usage.md).

A grammar applies where SGLang's reasoning gate lets it (`--reasoning-parser`, which
`ostinato up` gives the engines with the gateway's, and the call's `require_reasoning`:
gateway/prompts.py `thinks_first`): after the thinking's end tag for a model that thinks
first, else from the first token. gpt-oss's grammar itself holds the analysis channel.
Where no gate applies a thinking model of another family answers or calls at once, as under
a plain json_schema. Known gap (gpt-oss): `<|end|>` written as text inside a JSON string is
admitted by the grammar, and our harmony splitter ends the message there (the answer's
string is cut, a call's arguments are lost). Spelled out of ordinary tokens it gets through;
whether gpt-oss's own special token can (xgrammar's masking of special tokens) was not
checked with its vocabulary. Pure: builds JSON only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ostinato.harmony import CHANNEL, CONSTRAIN, END, MESSAGE, START
from ostinato.tool_call_types import ToolSchemas
from ostinato.tool_format_special import (
    _DS_BEGIN,
    _DS_CALL,
    _DS_CALL_END,
    _DS_END,
    _DS_SEP,
    _FENCE_CLOSE,
    _FENCE_OPEN,
    _KIMI_ARGS,
    _KIMI_BEGIN,
    _KIMI_CALL,
    _KIMI_CALL_END,
    _KIMI_END,
)

Format = dict[str, Any]
# Whitespace the JSON may hold in one run: room for a pretty-printed answer's newline and
# indent, but no runaway of blanks (a model stuck on them until max_tokens, the failure
# SGLang's --constrained-json-max-whitespace-cnt bounds for json_schema; a structural tag
# carries its own bound).
MAX_WHITESPACE = 16


def _json(schema: Any, style: str = "json") -> Format:
    fmt = {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_WHITESPACE}
    return fmt if style == "json" else {**fmt, "style": style}


def _arguments(parameters: Any, style: str = "json") -> Format:
    """A call's arguments: a JSON object, whatever the parameters leave unsaid (a parser
    takes no other), written in `style`."""
    kind = parameters.get("type", "object") if isinstance(parameters, dict) else None
    arguments = {**parameters, "type": "object"} if kind == "object" or (
        isinstance(kind, list) and "object" in kind) else {"type": "object"}
    return _json(arguments, style)


def _tag(begin: str, parameters: Any, end: str, style: str = "json") -> Format:
    """A call: its fixed start, its arguments, its fixed end."""
    return {"type": "tag", "begin": begin, "end": end, "content": _arguments(parameters, style)}


def _calls(tags: list[Format], separator: str, single: bool) -> Format:
    return {"type": "tags_with_separator", "tags": tags, "separator": separator,
            "at_least_one": True, "stop_after_first": single}


def _named(name: str, key: str) -> str:
    """How the family's JSON call object begins, up to its arguments (as its render writes
    it: ostinato/tool_format_json.py)."""
    return '{"name": ' + json.dumps(name) + ', "' + key + '": '


def _hermes(tools: ToolSchemas, single: bool) -> Format:
    return _calls([_tag("<tool_call>\n" + _named(name, "arguments"), params, "}\n</tool_call>")
                   for name, params in tools.items()], "\n", single)


def _llama3(tools: ToolSchemas, single: bool) -> Format:
    return _calls([_tag(_named(name, "parameters"), params, "}")
                   for name, params in tools.items()], ";", single)


def _mistral(tools: ToolSchemas, single: bool) -> Format:
    return {"type": "sequence", "elements": [
        {"type": "const_string", "value": "[TOOL_CALLS] ["},
        _calls([_tag(_named(name, "arguments"), params, "}") for name, params in tools.items()],
               ", ", single),
        {"type": "const_string", "value": "]"}]}


# The XML families. xgrammar's `qwen_xml` and `glm_xml` styles read the arguments' schema as
# its JSON style does (the declared properties in their order, the required ones present,
# no other unless additionalProperties allows it or none is declared), each value in its
# own tags: a string is any text up to the closing tag (which no value can hold); a string
# with an enum, const, pattern, format or length is that text, unquoted; any other value is
# JSON (numbers, booleans, null; objects and arrays valid against their schemas). What they
# cannot say: around such an unquoted string or a JSON value they admit up to
# MAX_WHITESPACE blanks, which the parsers keep in a string beyond the one newline
# qwen3_coder takes off each side (` c` is not the enum's `c`); a key that the schema does
# not declare must be an identifier; and a value is typed by the parsers' reading of its
# text (a qwen3_coder string written `null` is null, as in SGLang's parser).


def _qwen3_coder(tools: ToolSchemas, single: bool) -> Format:
    """As SGLang's Qwen3CoderDetector asks xgrammar for it (`qwen_3_coder`): the newline
    before `</function>` belongs to the call, so a call without arguments has an empty line
    where the template writes none (the parser reads either)."""
    return _calls([_tag(f"<tool_call>\n<function={name}>\n", params,
                        "\n</function>\n</tool_call>", "qwen_xml")
                   for name, params in tools.items()], "\n", single)


def _glm45(tools: ToolSchemas, single: bool) -> Format:
    """GLM-4.5's calls, the name ended by a newline as its template writes it and SGLang's
    Glm4MoeDetector reads it (which asks for no structural tag; GLM-4.7's, xgrammar's
    `glm_4_7`, has no newline there)."""
    return _calls([_tag(f"<tool_call>{name}\n", params, "</tool_call>", "glm_xml")
                   for name, params in tools.items()], "\n", single)


# The special-token sections, as xgrammar's builtin tags for these models write them: the
# section's tokens around calls in their own tokens (the tokens: ostinato/tool_format_special.py,
# the same as SGLang's detectors'). DeepSeek V3 (xgrammar's `deepseek_r1`): each call's
# arguments in a fenced JSON block, the calls one a line; V3.1 (`deepseek_v3_1`): NAME, tool_sep,
# ARGUMENTS, the calls back to back; Kimi K2 (`kimi`): functions.NAME:N with N any number
# (the conversation's count: the gateway numbers the calls' ids itself), back to back.


def _section(begin: str, tags: list[Format], separator: str, end: str, single: bool) -> Format:
    return {"type": "tag", "begin": begin, "content": _calls(tags, separator, single), "end": end}


def _deepseekv3(tools: ToolSchemas, single: bool) -> Format:
    return _section(_DS_BEGIN, [
        _tag(f"{_DS_CALL}function{_DS_SEP}{name}\n{_FENCE_OPEN}\n", params,
             f"\n{_FENCE_CLOSE}{_DS_CALL_END}") for name, params in tools.items()],
        "\n", _DS_END, single)


def _deepseekv31(tools: ToolSchemas, single: bool) -> Format:
    return _section(_DS_BEGIN, [_tag(f"{_DS_CALL}{name}{_DS_SEP}", params, _DS_CALL_END)
                                for name, params in tools.items()], "", _DS_END, single)


# Kimi's call counter (the call's index in the conversation; the gateway numbers ids itself).
# xgrammar's own `kimi` tag has \d+, under which a model may write digits until max_tokens
# (the random CPU-SGLang model did, 240 of them); five digits number any conversation.
KIMI_COUNTER = r"\d{1,5}"


def _kimi_k2(tools: ToolSchemas, single: bool) -> Format:
    return _section(_KIMI_BEGIN, [{
        "type": "tag", "begin": f"{_KIMI_CALL}functions.{name}:", "end": _KIMI_CALL_END,
        "content": {"type": "sequence", "elements": [
            {"type": "regex", "pattern": KIMI_COUNTER}, {"type": "const_string", "value": _KIMI_ARGS},
            _arguments(params)]}} for name, params in tools.items()], "", _KIMI_END, single)


# gpt-oss (harmony; the tokens: ostinato/harmony.py). The prompt ends in the role's header,
# <|start|>assistant; the grammar takes the model's analysis (any text up to <|end|>, its
# thinking) and then a message in the final channel, the JSON answer, or one in commentary to
# functions.NAME, the call, its arguments after <|constrain|>json (with the blank before it
# that OpenAI's encoder and our renderer write, or without, as xgrammar's harmony tag and
# SGLang's detector have it). Where xgrammar's own harmony tag departs:
# - the answer and the call end with their JSON: what ends them is a stop token of the model's
#   (<|return|>, <|call|>: its generation config's end of sequence ids, which SGLang hands
#   xgrammar as stop tokens), and xgrammar lets a stop token through only where the grammar
#   may end, never as a string inside it (a <|call|> in the grammar would have the model
#   spell it out of ordinary tokens). So one call: a call ends the model's turn, whatever
#   parallel_tool_calls says (the calls' ends are cut by the engine; our parsers read them so);
# - the message after the analysis (or, without one, after a repeated <|start|>assistant) is
#   always opened by <|start|>assistant: the form SGLang's detector and ours read a call in
#   also when the thinking stays in the text (`HarmonyTools` without the splitter), and the one
#   SGLang's reasoning gate for gpt-oss (--reasoning-parser: the grammar from its first <|end|>)
#   leaves to the grammar. A model that would answer at once writes an analysis first (or
#   its role's header again);
# - no preamble (a commentary message to the user), no built-in tool, no call with its
#   recipient in the role's header (` to=functions.NAME<|channel|>...`, read by our splitter
#   only after a <|start|>).


def _gpt_oss_messages(last: Format) -> Format:
    """The analysis (or a repeated role header), then `last`, opened by <|start|>assistant."""
    header = {"type": "const_string", "value": START + "assistant"}
    analysis = {"type": "tag", "begin": f"{CHANNEL}analysis{MESSAGE}",
                "content": {"type": "any_text"}, "end": END}
    return {"type": "sequence", "elements": [
        {"type": "or", "elements": [header, {"type": "sequence", "elements": [analysis, header]}]},
        last]}


def _gpt_oss_answer(answer_schema: Any) -> Format:
    return _gpt_oss_messages({"type": "sequence", "elements": [
        {"type": "const_string", "value": f"{CHANNEL}final{MESSAGE}"}, _json(answer_schema)]})


def _gpt_oss(tools: ToolSchemas, single: bool) -> Format:
    tags = [_tag(f"{CHANNEL}commentary to=functions.{name}{blank}{CONSTRAIN}json{MESSAGE}",
                 params, "") for name, params in tools.items() for blank in (" ", "")]
    return _gpt_oss_messages(_calls(tags, START + "assistant", True))


_CALLS: dict[str, Callable[[ToolSchemas, bool], Format]] = {
    "hermes": _hermes, "qwen25": _hermes, "llama3": _llama3, "mistral": _mistral,
    "qwen3_coder": _qwen3_coder, "glm45": _glm45, "deepseekv3": _deepseekv3,
    "deepseekv31": _deepseekv31, "kimi_k2": _kimi_k2, "gpt-oss": _gpt_oss}
# the answer's branch where it is more than the JSON: gpt-oss's is a message
_ANSWERS: dict[str, Callable[[Any], Format]] = {"gpt-oss": _gpt_oss_answer}


def answer_or_calls(answer_schema: Any, tool_format: str, tools: ToolSchemas,
                    single: bool) -> str | None:
    """The structural tag (JSON text) admitting a JSON answer valid against `answer_schema`,
    or calls of `tools` in `tool_format` (only the first, `single`: parallel_tool_calls
    false); None when the family has no such grammar."""
    calls = _CALLS.get(tool_format)
    if calls is None or not tools:
        return None
    answer = _ANSWERS.get(tool_format, _json)(answer_schema)
    return json.dumps({"type": "structural_tag", "format": {"type": "or", "elements": [
        answer, calls(tools, single)]}})
