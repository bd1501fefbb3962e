"""The request schemas of the OpenAPI document (gateway/openapi.py): chat and text completions,
their messages, tools and JSON schemas, written to accept exactly what gateway/openai_format.py
and gateway/calls.py accept, so that a request the document calls valid is served (the HTTP
fuzzer checks it: tests/fuzz/test_http_fuzz.py).

Null stands for a field left out wherever OpenAI's API allows it. What JSON Schema cannot
say is in the descriptions (and the fuzzer keeps to it): tool names unique, a named
tool_choice names a declared tool, the messages' text and the tools' schemas at most
max_prompt_chars in all, parent_call_ids only with X-Ostinato-Program, a call not its own
parent.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.calls import ID_PATTERN, LABEL_PATTERN, LOGIT_BIAS_LIMIT, LOGIT_BIAS_MAX_ENTRIES
from gateway.openai_fields import SERVICE_TIERS
from gateway.openai_format import MAX_PROMPTS, NEUTRAL, UNSUPPORTED_FIELDS
from gateway.prompts import REASONING_EFFORTS, RESERVED_TEMPLATE_KWARGS, TEMPLATE_KWARGS_MAX_CHARS
from ostinato.config import GatewayConfig
from ostinato.seeds import SEED_MAX, SEED_MIN

Schema = dict[str, Any]
NULL: Schema = {"type": "null"}
# A history tool call's arguments: any text is served, as OpenAI serves it (gateway/calls.py)
ARGUMENTS_TEXT = ("the text of a JSON object as the model wrote it; other text (a malformed "
                  "call) is served too: the chat template gets it as text, or as no "
                  "arguments where it cannot take text")
SERVICE_TIER: Schema = {"enum": [None, *SERVICE_TIERS], "description": "ignored (no tiers here)"}



# stream_options (not null) only with stream true, as OpenAI refuses it otherwise
STREAM_OPTIONS_NEED_STREAM: Schema = {
    "if": {"required": ["stream_options"], "properties": {"stream_options": {"type": "object"}}},
    "then": {"required": ["stream"], "properties": {"stream": {"const": True}}}}

def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = True,
        description: str = "", **kw: Any) -> Schema:
    out: Schema = {"type": "object", "properties": props, **kw}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def text(description: str = "", **kw: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **kw}


def metadata_schema(description: str) -> Schema:
    """OpenAI's metadata: at most 16 pairs, keys up to 64 characters, string values up to
    512 (gateway/openai_fields.py `check_metadata`)."""
    return nullable({"type": "object", "maxProperties": 16, "propertyNames": {"maxLength": 64},
                     "additionalProperties": {"type": "string", "maxLength": 512},
                     "description": description})


def nullable(schema: Schema) -> Schema:
    """`schema`, or null (the field left out)."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "array" and "oneOf" not in schema:
        return {**schema, "type": [kind, "null"]}
    described = {"description": schema["description"]} if "description" in schema else {}
    return {"oneOf": [schema, NULL], **described}


def _num(lo: float, hi: float) -> Schema:
    return nullable({"type": "number", "minimum": lo, "maximum": hi})


_JSON_TYPES = ["string", "number", "integer", "boolean", "object", "array", "null"]


def _json_schema() -> Schema:
    """The JSON schemas the document describes: the keywords tool parameters and structured
    output use (the gateway accepts any valid draft 2020-12 schema)."""
    return obj({
        "type": {"oneOf": [{"enum": _JSON_TYPES}, {"type": "array", "items": {
            "enum": _JSON_TYPES}, "minItems": 1, "uniqueItems": True}]},
        "description": text(), "title": text(),
        "properties": {"type": "object", "additionalProperties": ref("JsonSchema")},
        "required": {"type": "array", "items": text(), "uniqueItems": True},
        "items": ref("JsonSchema"),
        "enum": {"type": "array", "minItems": 1, "description": "any JSON values"},
        "additionalProperties": {"type": "boolean"},
    }, closed=False, description="A JSON schema (draft 2020-12): the document lists the "
                   "keywords tools and structured output commonly use; any valid schema is "
                   "accepted (other keywords, and ones draft 2020-12 does not define, too). A "
                   "response_format schema that admits no value (say, an enum none of whose "
                   "values has the schema's type) has no valid answer: the sim engine refuses "
                   "it (400); SGLang 0.5 (xgrammar) answered with an enum value regardless.")


# A tool's parameters: the schema of a JSON object (a call's arguments are one). One that
# admits no object (say, an enum of none) is refused by the engine when it calls the tool.
PARAMETERS: Schema = {"allOf": [ref("JsonSchema"), {"properties": {"type": {
    "enum": ["object", ["object"]]}}}], "description": "the JSON schema of the arguments: "
    "an object (\"type\", when given, is \"object\")"}


def _messages(cfg: GatewayConfig) -> dict[str, Schema]:
    part = obj({"type": {"const": "text"}, "text": text()}, ("type", "text"), closed=False)
    content = {"oneOf": [text(maxLength=cfg.max_prompt_chars),
                         {"type": "array", "items": ref("TextPart")}],
               "description": "text, or text parts (joined)"}
    tool_call = obj({
        "id": nullable(text()), "type": nullable({"const": "function"}),
        "function": obj({"name": text(minLength=1), "arguments": {"oneOf": [
            text(ARGUMENTS_TEXT), {"type": "object"}],
            "description": "a JSON object, as text (OpenAI's form) or as an object"}},
            ("name",), closed=False),
    }, ("function",), closed=False)
    no_tool_calls = {"type": ["array", "null"], "maxItems": 0,
                     "description": "only assistant messages carry tool calls"}

    def message(role: Schema, description: str, **props: Schema) -> Schema:
        required = ("role",) if role.get("const") == "assistant" else \
            ("role", "content", "tool_call_id") if role.get("const") == "tool" else ("role", "content")
        return obj({"role": role, "content": content, "name": nullable(text("the author")),
                    "tool_call_id": nullable(text("the tool call a tool message answers")),
                    "tool_calls": no_tool_calls, **props}, required, closed=False,
                   description=description + "; other fields are ignored")

    out: dict[str, Schema] = {
        "TextPart": part, "ToolCall": tool_call,
        "SystemMessage": message({"enum": ["system", "developer"]},
                                 "a system message (developer is read as system)"),
        "UserMessage": message({"const": "user"}, "a user message"),
        "AssistantMessage": message(
            {"const": "assistant"}, "an earlier answer: its text, its tool calls or both "
            "(each call answered by a tool message before the next message of another role, "
            "else a 400)",
            content=nullable(content),
            tool_calls=nullable({"type": "array", "items": ref("ToolCall")})),
        "ToolMessage": message(
            {"const": "tool"}, "a tool's result", tool_call_id=text(
                "the id of the tool call it answers: a call of an earlier assistant message "
                "(else a 400)", minLength=1)),
    }
    out["Message"] = {"oneOf": [ref(f"{r}Message") for r in
                                ("System", "User", "Assistant", "Tool")],
                      "description": "one message of the conversation, by its role"}
    return out


def request_schemas(cfg: GatewayConfig) -> dict[str, Schema]:
    """Chat and text completion requests and their parts, with the config's limits."""
    tool = obj({"type": {"const": "function"}, "function": obj({
        "name": text("1 to 64 letters, digits, _ or -; unique among the tools",
                     pattern="^[A-Za-z0-9_-]{1,64}$"),
        "description": nullable(text()), "strict": nullable({"type": "boolean"}),
        "parameters": nullable(PARAMETERS),
    }, ("name",), closed=False)}, ("type", "function"), closed=False)
    named_choice = obj({"type": {"const": "function"}, "function": obj(
        {"name": text("one of the tools")}, ("name",), closed=False)}, ("type", "function"),
        closed=False)
    allowed_choice = obj({"type": {"const": "allowed_tools"}, "allowed_tools": obj({
        "mode": {"enum": ["auto", "required"]},
        "tools": {"type": "array", "minItems": 1, "items": named_choice,
                  "description": "each one of the tools"}},
        ("mode", "tools"), closed=False)}, ("type", "allowed_tools"), closed=False,
        description="the tools the model may call: under required, the calls are constrained "
                    "to them and every tool stays in the prompt; under auto, only they are "
                    "offered")
    response_format = {"oneOf": [
        obj({"type": {"enum": ["text", "json_object"]}}, ("type",), closed=False),
        obj({"type": {"const": "json_schema"}, "json_schema": obj({
            "name": nullable(text()), "strict": nullable({"type": "boolean"}),
            "schema": ref("JsonSchema")}, ("schema",), closed=False)},
            ("type", "json_schema"), closed=False)]}
    extension = obj({
        "call_id": text("the call's id in its program (at most 128 characters, no '/' and no "
                        "control characters; not among its parents)", maxLength=128,
                        pattern=ID_PATTERN),
        "thread_id": text("its thread (parallel branch)", maxLength=128, pattern=LABEL_PATTERN),
        "parent_call_ids": {"type": "array", "items": text(minLength=1, pattern=LABEL_PATTERN),
                            "description": (
            "calls of the same program it depends on (with X-Ostinato-Program)")},
        "expected_output_tokens": nullable({"type": "integer", "description": (
            "a hint for the planner (taken within 0 to 2^32 - 1)")}),
    }, description="Ostinato's extension: where the call sits in its program")
    max_tokens = nullable({"type": "integer", "minimum": 1, "maximum": cfg.max_new_tokens_limit,
                           "description": f"default: {cfg.default_output_tokens}, cut to what "
                                          "the context window leaves"})
    common: dict[str, Schema] = {
        "model": {"enum": [cfg.model], "description": "the served model (optional)"},
        "max_tokens": max_tokens,
        "temperature": _num(0, 2),
        "top_p": nullable({"type": "number", "minimum": 0, "maximum": 1,
                           "description": "0: the likeliest token only"}),
        "seed": nullable({"type": "integer", "minimum": SEED_MIN, "maximum": SEED_MAX,
                          "description": "OpenAI's int64 or any uint64; a negative seed is "
                                         "taken modulo 2^64"}),
        "presence_penalty": _num(-2, 2), "frequency_penalty": _num(-2, 2),
        "logit_bias": nullable({
            "type": "object", "maxProperties": LOGIT_BIAS_MAX_ENTRIES,
            "propertyNames": {"pattern": "^(0|[1-9][0-9]{0,18})$"},
            "additionalProperties": {"type": "number", "minimum": -LOGIT_BIAS_LIMIT,
                                     "maximum": LOGIT_BIAS_LIMIT},
            "description": "token ids of the served model's tokenizer (decimal strings) to a "
                           "bias added to their logits; an id outside the model's vocabulary "
                           "is a 400 from the engine"}),
        # SGLang's extensions (its OpenAI server takes them; clients send them as extra_body)
        "top_k": nullable({"oneOf": [{"const": -1}, {"type": "integer", "minimum": 1,
                                                       "maximum": 2**31 - 1}],
                           "description": "SGLang's: -1 (the whole vocabulary) or at least 1"}),
        "min_p": nullable({"type": "number", "minimum": 0, "maximum": 1,
                           "description": "SGLang's"}),
        "repetition_penalty": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": 2,
                                        "description": "SGLang's: 1 is none"}),
        "min_tokens": nullable({"type": "integer", "minimum": 0, "maximum": 2**32 - 1,
                                "description": "SGLang's: no end of sequence before this many "
                                               "tokens; at most the max tokens (max_tokens, or "
                                               f"the default {cfg.default_output_tokens})"}),
        "ignore_eos": nullable({"type": "boolean",
                                "description": "SGLang's: generate up to the max tokens"}),
        "stop": nullable({"oneOf": [text(), {"type": "array", "items": text(), "maxItems": 4}]}),
        "stream": nullable({"type": "boolean", "description": "answer as server-sent events"}),
        "stream_options": nullable(obj({"include_usage": nullable({"type": "boolean"}),
                                        "include_obfuscation": nullable({"type": "boolean"})},
                                       description="only with stream true")),
        "user": {"description": "ignored"}, "metadata": metadata_schema("ignored"),
        "store": nullable({"type": "boolean", "description": "ignored"}),
        "service_tier": SERVICE_TIER,
        **{name: {"description": "ignored"} for name in (
            "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
            "safety_identifier", "verbosity")},
        "ostinato": nullable(ref("OstinatoRequest")),
        **{name: {"enum": [None] if name not in NEUTRAL else [None, NEUTRAL[name]],
                  "description": "not supported: taken only as null"
                                 + (f" or {json.dumps(NEUTRAL[name])}" if name in NEUTRAL else "")}
           for name in sorted(UNSUPPORTED_FIELDS)},
    }
    forced = {"required": ["tool_choice"], "properties": {"tool_choice": {"not": {
        "enum": ["auto", "none", None]}}}}
    chat = obj({
        **common,
        "messages": {"type": "array", "items": ref("Message"), "minItems": 1,
                     "maxItems": cfg.max_messages, "contains": {"anyOf": [
                         {"required": ["content"], "properties": {"content": {"anyOf": [
                             {"type": "string", "minLength": 1},
                             {"type": "array", "contains": {"required": ["text"], "properties": {
                                 "text": {"type": "string", "minLength": 1}}}}]}}},
                         {"required": ["tool_calls"], "properties": {"tool_calls": {
                             "type": "array", "minItems": 1}}}]},
                     "description": f"at most {cfg.max_prompt_chars} characters of text in all, "
                                    "the tools' schemas included; not every message empty"},
        "max_completion_tokens": max_tokens,
        "tools": nullable({"type": "array", "items": ref("Tool")}),
        "tool_choice": nullable({"oneOf": [{"enum": ["auto", "none", "required"]},
                                           named_choice, allowed_choice]}),
        "parallel_tool_calls": nullable({"type": "boolean"}),
        "chat_template_kwargs": nullable({
            "type": "object", "propertyNames": {"not": {"enum": sorted(RESERVED_TEMPLATE_KWARGS)}},
            "description": "SGLang's: variables for the model's chat template, e.g. "
                           "{\"enable_thinking\": false} (Qwen3); at most "
                           f"{TEMPLATE_KWARGS_MAX_CHARS} characters of JSON"}),
        "reasoning_effort": nullable({
            "enum": list(REASONING_EFFORTS),
            "description": "a reasoning model's effort: the chat template gets it as "
                           "reasoning_effort, and thinking / enable_thinking as whether it is "
                           "not none (unless chat_template_kwargs sets them)"}),
        "separate_reasoning": nullable({
            "type": "boolean", "description": "SGLang's: false leaves the thinking in the "
                                              "content (default true)"}),
        "stream_reasoning": nullable({
            "type": "boolean", "description": "SGLang's: false sends a streamed answer's "
                                              "thinking whole, with its first content"}),
        "modalities": nullable({"type": "array", "const": ["text"],
                                "description": "text only (audio is refused)"}),
        "response_format": nullable(response_format),
        "logprobs": nullable({"type": "boolean"}),
        "top_logprobs": nullable({"type": "integer", "minimum": 0, "maximum": 20,
                                  "description": "above 0 only with logprobs"}),
        "n": nullable({"type": "integer", "minimum": 1, "maximum": 8,
                       "description": "answers (streamed side by side, by choice index)"}),
    }, ("messages",), allOf=[
        # tool_choice "required" or a named function: tools
        {"if": forced, "then": {"required": ["tools"], "properties": {
            "tools": {"type": "array", "minItems": 1}}}},
        {"if": {"required": ["top_logprobs"], "properties": {"top_logprobs": {
            "type": "integer", "minimum": 1}}},
         "then": {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}}},
        STREAM_OPTIONS_NEED_STREAM,
    ], description=(
        "OpenAI's chat-completions request. Fields that would change the answer but are not "
        "supported (audio, functions, ...) are refused (400) unless null or a "
        "value that asks for nothing (functions [], echo false), unknown fields always, "
        "never dropped; `cache_salt` is refused (the gateway derives it from the API key). "
        "tool_choice `required` or a named function needs tools (a response_format then applies "
        "to a later text answer, not to the forced call); "
        "top_logprobs above 0 needs logprobs."))
    one_prompt = text(minLength=1, maxLength=cfg.max_prompt_chars)
    completion = obj({
        **common,
        "prompt": {"oneOf": [one_prompt, {
            "type": "array", "items": one_prompt, "minItems": 1, "maxItems": MAX_PROMPTS}],
            "description": f"the raw prompt (no chat template), or 1 to {MAX_PROMPTS} of them "
                           "(token ids are not taken)"},
        "logprobs": nullable({"type": "integer", "minimum": 0, "maximum": 20,
                              "description": "top alternatives per token; 0: the sampled "
                                             "tokens' logprobs alone"}),
        "n": chat["properties"]["n"],
    }, ("prompt",), allOf=[STREAM_OPTIONS_NEED_STREAM],
        description="OpenAI's (legacy) completions request: raw prompts, each answered n "
                    "times (the choices of each prompt in turn)")
    return {**_messages(cfg), "Tool": tool, "JsonSchema": _json_schema(),
            "OstinatoRequest": extension, "ChatCompletionRequest": chat,
            "CompletionRequest": completion}
