"""A call as the served model sees it: chat template applied, tokenized once, constrained.

Pure (no I/O): the gateway renders each call's messages and tools with the model's chat
template (ostinato/tokenizers.py), and the ids go to the engine (SGLang `input_ids`), the
KV index's block hashes and the planner's token count. Constraints follow SGLang's OpenAI
server (serving_chat.py, 0.5.5 to 0.5.10): `response_format` json_object / json_schema
become `sampling_params.json_schema`; tool_choice "required" or a named function constrain
the output to a JSON array of calls ({"name", "parameters"}), which is then parsed as such.
Where SGLang's server departs from OpenAI, a JSON format with tools offered (tool_choice
auto), the gateway asks for a JSON answer *or* calls in the model's format
(`sampling_params.structural_tag`: ostinato/tool_grammars.py), so the model keeps its tools.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.tool_output import SHORT_ID_FAMILIES, CallIds
from ostinato import strict_json
from ostinato.calls_after_thinking import CallsAfterThinking
from ostinato.harmony import HarmonyFormat
from ostinato.reasoning_formats import REASONING_FORMATS, Reasoning, ReasoningFormat
from ostinato.tokenizers import ChatRenderer, TemplateRefused
from ostinato.tool_formats import ToolCallParser, ToolSchemas, get_parser
from ostinato.tool_grammars import answer_or_calls
from ostinato.v1 import common_pb2

_MODE = common_pb2.ToolChoiceMode
_FORMAT = common_pb2.ResponseFormatType


@dataclass(frozen=True)
class PreparedPrompt:
    text: str
    ids: list[int]
    json_schema: str  # SGLang sampling_params.json_schema; "" for none
    parser: ToolCallParser | None  # reads tool calls out of the output; None: text only
    tools: ToolSchemas  # the tools offered: name -> parameters schema
    single_call: bool  # parallel_tool_calls false: keep the first call only
    reasoning: Reasoning | None = None  # how a chat answer's thinking is written
    # how its tool calls are named (kimi_k2's number the conversation's calls so far)
    call_ids: CallIds = CallIds()  # noqa: RUF009 (frozen)
    # the engine keeps special tokens in its output (SGLang's skip_special_tokens false, as
    # its server sets it): tools are offered, or the model's messages are written in them
    keep_special_tokens: bool = False
    # SGLang sampling_params.structural_tag (JSON; "" for none): a JSON answer or tool calls
    # (ostinato/tool_grammars.py), in place of json_schema when tools are offered
    structural_tag: str = ""
    # the model thinks before this chat turn's answer (thinks_first): the engine holds the
    # constraint back until the thinking ends (SGLang's require_reasoning)
    require_reasoning: bool = False


TEMPLATE_KWARGS_MAX_CHARS = 4096  # chat_template_kwargs, as JSON text
# apply_chat_template's own arguments and the template's own variables: not for a caller
RESERVED_TEMPLATE_KWARGS = frozenset({
    "messages", "conversation", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length",
    "return_tensors", "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
    "bos_token", "eos_token", "raise_exception", "strftime_now"})


# OpenAI's reasoning_effort levels, and SGLang's "max" (models without it read it as high)
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# the thinking switches of chat templates: DeepSeek's and Kimi's, Qwen3's and GLM's
THINKING_SWITCHES = ("thinking", "enable_thinking")


class BadTemplateKwargs(ValueError):
    def __init__(self, message: str, field: str = "chat_template_kwargs") -> None:
        super().__init__(message)
        self.field = field  # the request field at fault


def template_kwargs(call: common_pb2.CallSpec) -> dict[str, object]:
    """The variables the chat template gets: the call's reasoning_effort (and the thinking
    switches it implies, as SGLang's server sets them), then its chat_template_kwargs, which
    win; raises BadTemplateKwargs."""
    kwargs: dict[str, object] = {}
    if call.reasoning_effort:
        if call.reasoning_effort not in REASONING_EFFORTS:
            raise BadTemplateKwargs(f"reasoning_effort {call.reasoning_effort[:40]!r} is not "
                                    f"one of {', '.join(REASONING_EFFORTS)}",
                                    "reasoning_effort")
        thinks = call.reasoning_effort != "none"
        kwargs = {"reasoning_effort": call.reasoning_effort,
                  **dict.fromkeys(THINKING_SWITCHES, thinks)}
    return {**kwargs, **_client_kwargs(call)}


def _client_kwargs(call: common_pb2.CallSpec) -> dict[str, object]:
    if not call.chat_template_kwargs:
        return {}
    where = "chat_template_kwargs"
    if len(call.chat_template_kwargs) > TEMPLATE_KWARGS_MAX_CHARS:
        raise BadTemplateKwargs(f"{where} is longer than {TEMPLATE_KWARGS_MAX_CHARS} "
                                "characters of JSON")
    try:
        kwargs = json.loads(call.chat_template_kwargs)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadTemplateKwargs(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise BadTemplateKwargs(f"{where} must be a JSON object")
    reserved = sorted(RESERVED_TEMPLATE_KWARGS & set(kwargs))
    if reserved:
        raise BadTemplateKwargs(f"{where} cannot set {', '.join(reserved)} (the gateway "
                                "renders the messages and tools itself)")
    return kwargs


def offers_tools(call: common_pb2.CallSpec) -> bool:
    return bool(call.tools) and call.tool_choice.mode != _MODE.TOOL_CHOICE_MODE_NONE


def template_tools(call: common_pb2.CallSpec) -> list[dict[str, Any]]:
    """The call's tools as chat templates take them (none when tool_choice is "none"). With
    OpenAI's allowed_tools, all of them under "required" (the calls are constrained to the
    allowed ones, the prompt the same whichever are: OpenAI's point), the allowed ones only
    under "auto" (nothing constrains a free answer: a model offered a tool may call it)."""
    if not offers_tools(call):
        return []
    choice = call.tool_choice
    offered = set(choice.allowed_tools) if choice.allowed_tools and \
        choice.mode != _MODE.TOOL_CHOICE_MODE_REQUIRED else None
    out = []
    for t in call.tools:
        if offered is not None and t.name not in offered:
            continue
        fn: dict[str, Any] = {"name": t.name, "description": t.description,
                              "parameters": json.loads(t.parameters_json) if t.parameters_json
                              else {"type": "object", "properties": {}}}
        out.append({"type": "function", "function": fn})
    return out


def template_messages(call: common_pb2.CallSpec, short_ids: bool = False,
                      objects_only: bool = False) -> list[dict[str, Any]]:
    """OpenAI-shaped messages, tool call arguments as objects (what templates index into).
    `short_ids`: the tool calls' ids made 9 letters and digits where they are not (mistral's
    templates refuse others: ids another client or model gave), the same id each time.
    `objects_only`: arguments that are no JSON object given as none ({}), not as text."""
    ids = _short_id if short_ids else str
    out = []
    for m in call.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            msg["tool_calls"] = [
                {"id": ids(tc.id), "type": "function",
                 "function": {"name": tc.name,
                              "arguments": _arguments(tc.arguments, objects_only)}}
                for tc in m.tool_calls]
        if m.role == "tool" and m.tool_call_id:
            msg["tool_call_id"] = ids(m.tool_call_id)
        if m.name:
            msg["name"] = m.name
        out.append(msg)
    return out


def _short_id(call_id: str) -> str:
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    return hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:9]


def _arguments(text: str, objects_only: bool = False) -> dict[str, Any] | str:
    """A history tool call's arguments as templates take them: an object, or the text as the
    model wrote it when it is not a JSON object (templates print a string as it is: Qwen's
    `arguments is string`, or `tojson` it; one that indexes into it refuses the messages)."""
    try:
        args = strict_json.loads(text or "{}")
    except (ValueError, RecursionError):  # (NotJson and JSONDecodeError are ValueErrors)
        args = None
    return args if isinstance(args, dict) else {} if objects_only else text


class ConflictingDefinitions(ValueError):
    """Two tools define one name ($defs) differently: one schema cannot hold both."""


# Where a schema keeps the definitions its "$ref"s name: "#/$defs/X" (draft 2019+, what
# pydantic writes) or "#/definitions/X" (draft 7).
_DEFINITIONS = ("$defs", "definitions")


def _calls_schema(call: common_pb2.CallSpec) -> dict[str, Any]:
    """SGLang's schema for tool_choice required / a named function (function_call/utils.py):
    each tool's parameters a branch, their definitions moved to the root, where their
    "$ref"s ("#/$defs/X") resolve. Raises ConflictingDefinitions."""
    choice = call.tool_choice
    tools = [t for t in call.tools if choice.mode != _MODE.TOOL_CHOICE_MODE_FUNCTION
             or t.name == choice.function_name]
    if choice.allowed_tools:  # (OpenAI's allowed_tools: the calls among them only)
        tools = [t for t in tools if t.name in choice.allowed_tools]
    branches = []
    definitions: dict[str, dict[str, Any]] = {}
    for t in tools:
        params: dict[str, Any] = json.loads(t.parameters_json) if t.parameters_json else {
            "type": "object", "properties": {}}
        for where in _DEFINITIONS:
            for name, defined in (params.pop(where, None) or {}).items():
                known = definitions.setdefault(where, {}).setdefault(name, defined)
                if known != defined:
                    raise ConflictingDefinitions(
                        f"tools define {where}/{name} differently; with tool_choice required "
                        "or a named function their definitions share one schema")
        branches.append({"properties": {"name": {"type": "string", "enum": [t.name]},
                                        "parameters": params},
                         "required": ["name", "parameters"]})
    schema: dict[str, Any] = {"type": "array", "minItems": 1,
                              "items": {"type": "object", "anyOf": branches}, **definitions}
    if choice.mode == _MODE.TOOL_CHOICE_MODE_FUNCTION or (
            call.HasField("parallel_tool_calls") and not call.parallel_tool_calls):
        schema["maxItems"] = 1
    return schema


def constraint(call: common_pb2.CallSpec) -> tuple[str, bool]:
    """(json_schema, whether it is the tool-call array); ("", False) for free output."""
    if call.tool_choice.mode in (_MODE.TOOL_CHOICE_MODE_REQUIRED, _MODE.TOOL_CHOICE_MODE_FUNCTION):
        return json.dumps(_calls_schema(call)), True
    fmt = call.response_format
    if fmt.type == _FORMAT.RESPONSE_FORMAT_TYPE_JSON_OBJECT:
        return json.dumps({"type": "object"}), False
    if fmt.type == _FORMAT.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        return fmt.schema_json, False
    return "", False


def prepare(call: common_pb2.CallSpec, renderer: ChatRenderer, tokenize: Any,
            tool_format: str, reasoning_format: str = "") -> PreparedPrompt:
    """`call` must be normalized (gateway/calls.py). A raw `prompt` is tokenized as it is,
    and its output is all answer (a reasoning parser reads chat answers, as SGLang's does),
    as is a call's that keeps its thinking in its text (reasoning_in_text)."""
    schema, forced = constraint(call)
    # the tools whose calls are read (and, constrained, written): OpenAI's allowed_tools if
    # given (template_tools says which the prompt offers), else all of them
    allowed = set(call.tool_choice.allowed_tools) or {t.name for t in call.tools}
    tools = {t.name: _parameters(t) for t in call.tools if t.name in allowed}
    single = call.HasField("parallel_tool_calls") and not call.parallel_tool_calls
    tag = answer_or_calls(json.loads(schema), tool_format, tools, single) \
        if schema and not forced and offers_tools(call) else None
    if tag is not None:  # the JSON answer is one of its two branches
        schema = ""
    kwargs = template_kwargs(call)
    if call.prompt:
        text, ids = call.prompt, tokenize(call.prompt)
    else:
        text, ids = _rendered(call, renderer, tool_format in SHORT_ID_FAMILIES, kwargs)
    parser: ToolCallParser | None = get_parser("json_array") if forced else (
        get_parser(tool_format) if offers_tools(call) else None)
    split = reasoning_format and not call.prompt and not call.reasoning_in_text
    reasoning = REASONING_FORMATS[reasoning_format] if split else None
    kept = REASONING_FORMATS.get(reasoning_format) if call.reasoning_in_text else None
    if forced and parser is not None and isinstance(kept, ReasoningFormat):
        parser = CallsAfterThinking(parser, kept.end)  # the array follows the thinking
    if isinstance(reasoning, ReasoningFormat) and reasoning.starts_inside and any(
            kwargs.get(switch) is False for switch in THINKING_SWITCHES):
        # the template opens no thinking when told not to (a hybrid model's, as SGLang
        # reads a toggled template): the output is read as it comes
        reasoning = dataclasses.replace(reasoning, starts_inside=False)
    thinks = thinks_first(reasoning_format, bool(call.prompt), kwargs)
    numbered = get_parser(tool_format).numbered_ids
    first = sum(len(m.tool_calls) for m in call.messages if m.role == "assistant")
    special = parser is not None or (
        bool(reasoning_format) and REASONING_FORMATS[reasoning_format].special_tokens)
    return PreparedPrompt(text, ids, schema, parser, tools, single, reasoning,
                          CallIds(first if numbered else None, tool_format in SHORT_ID_FAMILIES),
                          special, tag or "", thinks)


def _rendered(call: common_pb2.CallSpec, renderer: ChatRenderer, short_ids: bool,
              kwargs: dict[str, object]) -> tuple[str, list[int]]:
    """The chat template's prompt: a history call's malformed arguments given as text, or,
    where the template refuses that (Qwen3-Coder's loops over `arguments|items`), as none
    ({}), so that one malformed call leaves no conversation refused; TemplateRefused."""
    tools = template_tools(call) or None
    try:
        return renderer.render(template_messages(call, short_ids), tools, kwargs)
    except TemplateRefused:
        plain = template_messages(call, short_ids, objects_only=True)
        if plain == template_messages(call, short_ids):  # (no malformed call to blame)
            raise
        return renderer.render(plain, tools, kwargs)


def thinks_first(reasoning_format: str, raw_prompt: bool, kwargs: dict[str, object]) -> bool:
    """Whether the model thinks before its answer: SGLang's require_reasoning, by the
    gateway's own rule. A chat turn of a model with a reasoning parser thinks first unless a
    thinking switch is false (Qwen3's enable_thinking, DeepSeek's and Kimi's thinking): the
    switch that also makes `prepare` read the output as starting outside the thinking, so
    that the engine's gate and the gateway's splitter agree. gpt-oss always thinks. A raw
    prompt is /generate's own (require_reasoning false). SGLang's server
    (serving_chat.py `_get_reasoning_from_request`, 0.5.23) decides from the template's own
    toggle and each detector's default instead, which the gateway cannot see: where a
    template ignores the switch and the model thinks anyway (DeepSeek-R1's), the grammar
    holds from the first token here (a valid answer, no thinking) where SGLang's would let
    it think; where a template's thinking is off by default (DeepSeek-V3.1's), send the
    switch false (else the end tag never comes and the answer is not constrained).
    Whether the gateway splits the thinking off (reasoning_in_text) does not matter."""
    if not reasoning_format or raw_prompt:
        return False
    if isinstance(REASONING_FORMATS[reasoning_format], HarmonyFormat):
        return True
    return not any(kwargs.get(switch) is False for switch in THINKING_SWITCHES)


def _parameters(tool: common_pb2.Tool) -> dict[str, Any]:
    """A tool's parameters schema (checked JSON, gateway/calls.py); {} for none."""
    schema = json.loads(tool.parameters_json) if tool.parameters_json else {}
    return schema if isinstance(schema, dict) else {}
