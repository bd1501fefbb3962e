"""Tool calls in an LLM's output text: parsed in the model family's format, and rendered back.

The formats follow SGLang's function-call detectors (python/sglang/srt/function_call/ in
sgl-project/sglang, 0.5.23), selected there with --tool-call-parser, and the chat templates
of the model families (how a model writes the calls it was trained on):

hermes, qwen25 (HermesDetector, Qwen25Detector)
    The content, then one ``<tool_call>`` block per call, the blocks separated by a newline::

        Let me look that up.
        <tool_call>
        {"name": "get_weather", "arguments": {"city": "Paris"}}
        </tool_call>

    Parsing also accepts the blocks without the newlines inside and between the tags.

llama3 (Llama32Detector: Llama 3.1/3.2 JSON tool calling)
    The content, ``<|python_tag|>``, then JSON objects separated by ``;`` (the separator SGLang uses;
    parsing allows whitespace around it)::

        <|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}};{"name": ...}

    The tag may be left out when the output is only calls: output that starts (after whitespace) with
    ``{`` and parses as calls is calls; any other JSON object (a JSON answer, say) is content.

mistral (MistralDetector)
    The content, then ``[TOOL_CALLS]`` and one JSON array of calls (a single object is accepted too)::

        [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]

qwen3_coder (Qwen3CoderDetector: Qwen3-Coder, Qwen3.5)
    One ``<tool_call>`` block per call, one ``<parameter=...>`` per argument; a newline
    around each value is not part of it::

        <tool_call>
        <function=get_weather>
        <parameter=city>
        Paris
        </parameter>
        <parameter=days>
        3
        </parameter>
        </function>
        </tool_call>

glm45 (Glm4MoeDetector: GLM-4.5, GLM-4.6)
    The name after ``<tool_call>``, ended by a newline, then key and value tags per argument::

        <tool_call>get_weather
        <arg_key>city</arg_key>
        <arg_value>Paris</arg_value>
        </tool_call>

    In these two a value is text, typed by the tool's parameters schema (ostinato/tool_arg_types.py:
    ``3`` is the number for an integer, the string "3" for a string, and stays text for an argument
    the schema does not declare in qwen3_coder); rendering writes strings as they are, other values
    as JSON.

deepseekv3, deepseekv31 (DeepSeekV3Detector, DeepSeekV31Detector)
    DeepSeek's special tokens around the calls (written here in ASCII: in the tokens the bars are
    U+FF5C and the underscores U+2581); V3 writes ``function<|tool_sep|>NAME``, a newline and the
    arguments in a fenced ```json block, V3.1 and later ``NAME<|tool_sep|>ARGUMENTS``::

        <|tool_calls_begin|><|tool_call_begin|>get_weather<|tool_sep|>{"city": "Paris"}
        <|tool_call_end|><|tool_calls_end|>

    (one line, without the break).

kimi_k2 (KimiK2Detector: Kimi K2)
    Calls named ``functions.NAME:N`` (N counts the conversation's calls; SGLang's server makes it
    the call's id, and so does the gateway)::

        <|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0
        <|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>

    (one line). A bare counter for a name is read as the one tool's call when only one is offered
    (SGLang also guesses among several from the arguments' keys; we do not).

gpt-oss (GptOssDetector: gpt-oss, OpenAI's harmony format)
    A message to ``functions.NAME`` in the commentary channel, its body the arguments; read
    together with the reasoning format of the same name (ostinato/harmony.py), which hands
    the calls on in one form::

        <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json
        <|message|>{"city": "Paris"}<|call|>

    (one line). The engine may have cut the last ``<|call|>`` (a stop token).

json_array
    The whole output is a JSON array of calls: what SGLang's constrained decoding makes any model emit
    for tool_choice "required" or a named function (the schema of function_call/utils.py)::

        [{"name": "get_weather", "parameters": {"city": "Paris"}}]

The JSON formats take the arguments from either "arguments" or "parameters" (not both), and accept
them double-encoded, as a JSON string holding the object. Rendering writes the key the family's
models write: "arguments" for hermes, qwen25 and mistral, "parameters" for llama3 and json_array.

Parsing decides per whole output and never raises. Either everything from the start of the calls to
the end of the output is well-formed calls, and the content is the text before them with its trailing
whitespace removed ("" when the output is only calls); or the output has no calls and all of it,
unchanged, is the content. Not well-formed: bad or truncated JSON (max_tokens ran out), a missing or
unclosed tag, a call without a name, arguments that are not an object, a name outside the offered
tools when any are given, an empty list of calls, or text after the calls. (SGLang's detectors are
more lenient here: they drop a call to an unknown tool and keep the rest, and read some unclosed
tags; the gateway's clients get the model's text instead, as for any output that is not calls.)

With tools offered the engine keeps special tokens in the output text (SGLang's
skip_special_tokens false, as its server sets it), so that these tags reach the parser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from ostinato.harmony import HarmonyTools
from ostinato.tool_call_types import ParsedOutput, ParsedToolCall, ToolCallParser, ToolFormat, ToolSchemas
from ostinato.tool_format_json import Hermes, JsonArray, Llama3, Mistral
from ostinato.tool_format_special import DeepSeekV3, DeepSeekV31, KimiK2
from ostinato.tool_format_xml import Glm45, Qwen3Coder

__all__ = ["PARSERS", "ParsedOutput", "ParsedToolCall", "ToolCallParser", "ToolSchemas",
           "get_parser", "render_tool_calls"]

_FORMATS: Mapping[str, ToolFormat] = MappingProxyType({f.name: f for f in (
    Hermes("hermes"), Hermes("qwen25"), Llama3(), Mistral(), Qwen3Coder(), Glm45(),
    DeepSeekV3(), DeepSeekV31(), KimiK2(), HarmonyTools(), JsonArray())})

PARSERS: Mapping[str, ToolCallParser] = _FORMATS
# what a served model may be configured with (json_array is for forced calls only)
MODEL_FORMATS = tuple(name for name in _FORMATS if name != "json_array")


def _format(name: str) -> ToolFormat:
    try:
        return _FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(_FORMATS))
        raise ValueError(f"unknown tool call parser {name!r}; known parsers: {known}") from None


def get_parser(name: str) -> ToolCallParser:
    return _format(name)


def render_tool_calls(family: str, calls: Sequence[ParsedToolCall]) -> str:
    """The text a model of ``family`` emits for ``calls`` ("" for none). Raises ValueError for an unknown
    family or arguments that are not a JSON object text. parse(render(calls)) gives back the calls (with
    their arguments in canonical form; typed by the tools' schemas in qwen3_coder and glm45)."""
    renderer = _format(family)
    return renderer.render(calls) if calls else ""
