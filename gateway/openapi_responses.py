"""The Responses API's schemas in the OpenAPI document (gateway/openapi.py): the request,
written to accept exactly what gateway/responses_format.py (and the chat path it feeds)
accepts, and the response object of gateway/responses_output.py.

What JSON Schema cannot say is in the descriptions (the HTTP fuzzer keeps to it): function
names unique, a named tool_choice names a declared tool, the instructions' and input's text
at most max_prompt_chars in all, parent_call_ids only with X-Ostinato-Program,
previous_response_id names a response the caller's tenant has stored.
"""

from __future__ import annotations

from gateway.openai_sampling import SGLANG_EXTENSIONS
from gateway.openapi_requests import (
    ARGUMENTS_TEXT,
    NULL,
    PARAMETERS,
    SERVICE_TIER,
    Schema,
    metadata_schema,
    nullable,
    obj,
    ref,
    text,
)
from gateway.prompts import REASONING_EFFORTS
from gateway.responses_format import IGNORED, INCLUDES, SUMMARIES, UNSUPPORTED
from ostinato.config import GatewayConfig


def _nonempty_input() -> Schema:
    """Some text to answer: non-empty instructions, or an input item with text or a call."""
    said = {"anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "contains": {"anyOf": [
                          {"required": [key], "properties": {
                              key: {"type": "string", "minLength": 1}}}
                          for key in ("text", "refusal")]}}]}
    return {"anyOf": [
        {"required": ["instructions"], "properties": {"instructions": {"type": "string",
                                                                       "minLength": 1}}},
        {"required": ["input"], "properties": {"input": {"anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "contains": {"anyOf": [
                {"required": ["content"], "properties": {"content": said,
                                                         "type": {"const": "message"}}},
                {"required": ["type", "output"], "properties": {
                    "output": said, "type": {"const": "function_call_output"}}},
                {"required": ["type"], "properties": {"type": {"const": "function_call"}}}]}}]}}},
    ]}


def _items(cfg: GatewayConfig) -> dict[str, Schema]:
    part = {"oneOf": [
        obj({"type": {"enum": ["input_text", "output_text", "text"]}, "text": text()},
            ("type", "text"), closed=False),
        obj({"type": {"const": "refusal"}, "refusal": text()}, ("type", "refusal"),
            closed=False)],
        "description": "a text part (input_text, output_text, text or refusal)"}
    content = {"oneOf": [text(maxLength=cfg.max_prompt_chars),
                         {"type": "array", "items": ref("ResponsesTextPart")}],
               "description": "text, or text parts (joined)"}
    return {
        "ResponsesTextPart": part,
        "ResponsesMessageItem": obj({
            "type": {"const": "message"}, "role": {"enum": ["user", "system", "developer",
                                                            "assistant"]},
            "content": content}, ("role", "content"), closed=False,
            description="a message (developer is read as system); other fields are ignored"),
        "ResponsesFunctionCallItem": obj({
            "type": {"const": "function_call"}, "call_id": text(), "name": text(minLength=1),
            "arguments": text(ARGUMENTS_TEXT)},
            ("type", "call_id", "name", "arguments"), closed=False,
            description="a function call of an earlier answer (answered by a "
                        "function_call_output before the next message, else a 400)"),
        "ResponsesFunctionCallOutputItem": obj({
            "type": {"const": "function_call_output"}, "call_id": text(
                "the call_id of the function_call it answers: in a response's input, one of an "
                "earlier item (else a 400)"), "output": content},
            ("type", "call_id", "output"), closed=False, description="a function's result"),
        "ResponsesReasoningItem": obj({"type": {"const": "reasoning"}}, ("type",), closed=False,
                                      description="another model's reasoning: dropped"),
        "ResponsesInputItem": {"oneOf": [ref(f"Responses{k}Item") for k in (
            "Message", "FunctionCall", "FunctionCallOutput", "Reasoning")]},
    }


def response_request_schemas(cfg: GatewayConfig, chat: Schema) -> dict[str, Schema]:
    """The Responses request and its parts; `chat` is the chat request's schema (its
    fields' schemas are shared)."""
    common = chat["properties"]
    tool = obj({
        "type": {"const": "function"},
        "name": text("1 to 64 letters, digits, _ or -; unique among the tools",
                     pattern="^[A-Za-z0-9_-]{1,64}$"),
        "description": nullable(text()), "strict": nullable({"type": "boolean"}),
        "parameters": nullable(PARAMETERS),
        "defer_loading": {"description": "ignored"}, "output_schema": {"description": "ignored"},
        "allowed_callers": nullable({"type": "array", "contains": {"const": "direct"},
                                     "description": "must let the model call it"})},
        ("type", "name"), description="a function tool (hosted tools are not served)")
    fmt = {"oneOf": [
        obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
        obj({"type": {"const": "json_schema"}, "name": nullable(text()),
             "schema": ref("JsonSchema"), "strict": nullable({"type": "boolean"}),
             "description": nullable(text())}, ("type", "schema"))]}
    refused = {name: {"enum": [None, False], "description": f"not supported: {why}"}
               for name, why in UNSUPPORTED.items()}
    forced = {"required": ["tool_choice"], "properties": {"tool_choice": {"not": {
        "enum": ["auto", "none", None]}}}}
    # (a forced call with a JSON text.format: the format governs a later text answer only)
    request = obj({
        "model": common["model"], "instructions": nullable(text(
            "a system message before the input", maxLength=cfg.max_prompt_chars)),
        "input": {"oneOf": [text(maxLength=cfg.max_prompt_chars),
                            {"type": "array", "items": ref("ResponsesInputItem"),
                             "minItems": 1, "maxItems": cfg.max_messages}],
                  "description": f"a user message, or items; at most {cfg.max_prompt_chars} "
                                 "characters of text with the instructions and the tools' schemas"},
        "tools": nullable({"type": "array", "items": ref("ResponsesTool")}),
        "tool_choice": nullable({"oneOf": [
            {"enum": ["auto", "none", "required"]},
            obj({"type": {"const": "function"}, "name": text("one of the tools")},
                ("type", "name")),
            obj({"type": {"const": "allowed_tools"}, "mode": {"enum": ["auto", "required"]},
                 "tools": {"type": "array", "minItems": 1, "items": obj(
                     {"type": {"const": "function"}, "name": text("one of the tools")},
                     ("type", "name"), closed=False), "description": "each one of the tools"}},
                ("type", "mode", "tools"), description="as the chat API's allowed_tools")]}),
        "parallel_tool_calls": common["parallel_tool_calls"],
        "text": nullable(obj({"format": nullable(fmt), "verbosity": {
            "description": "ignored"}})),
        "max_output_tokens": common["max_tokens"], "temperature": common["temperature"],
        "top_p": common["top_p"],
        **{name: common[name] for name in SGLANG_EXTENSIONS},  # as the chat API's
        "top_logprobs": nullable({"type": "integer", "minimum": 0, "maximum": 20}),
        "stream": common["stream"],
        "include": nullable({"type": "array", "items": {"enum": sorted(INCLUDES)}}),
        "truncation": nullable({"enum": ["disabled", "auto"], "description": (
            "auto: the conversation's oldest items are left out until it fits the model's "
            "context window; disabled (the default): a request that does not fit is a 400 "
            "context_length_exceeded")}),
        "reasoning": nullable(obj({
            "effort": nullable({"enum": list(REASONING_EFFORTS)}),
            "summary": nullable({"enum": list(SUMMARIES)}),
            "generate_summary": nullable({"enum": list(SUMMARIES)})},
            description="a reasoning model's effort, as the chat API's reasoning_effort; "
                        "no summary is written (the thinking is the reasoning item's "
                        "content)")),
        "metadata": metadata_schema("echoed in the response"),
        "store": nullable({"type": "boolean", "description": (
            "keep the finished response (the default: true) for previous_response_id and "
            "GET /v1/responses/{response_id}, for gateway.responses_ttl_s")}),
        "previous_response_id": nullable(text(
            "continue a stored response of the caller's tenant: its input and output come "
            "before this input (instructions are not carried over); one never stored, "
            "expired, deleted or another tenant's is a 400 (previous_response_not_found)")),
        "conversation": nullable({"oneOf": [text(), obj({"id": text()}, ("id",))],
                                  "description": (
            "a conversation of the caller's tenant (/v1/conversations): its items come "
            "before this input, and this turn's input and output are added to it; one "
            "unknown or another tenant's is a 404")}),
        "ostinato": common["ostinato"],
        "service_tier": SERVICE_TIER,
        **{name: {"description": "ignored"} for name in sorted(IGNORED - {"metadata",
                                                                          "service_tier"})},
        **refused,
    }, ("input",), allOf=[
        _nonempty_input(),
        {"not": {"required": ["conversation", "previous_response_id"], "properties": {
            "conversation": {"not": NULL}, "previous_response_id": {"not": NULL}}}},
        {"if": forced, "then": {"required": ["tools"], "properties": {
            "tools": {"type": "array", "minItems": 1}}}},
    ], description=(
        "OpenAI's Responses request. A finished response is stored unless `store` is false, "
        "and previous_response_id continues one, or `conversation` runs it in a conversation "
        "(not both); hosted tools, images and background runs are refused. Unknown fields are "
        "refused (400). tool_choice `required` or a named function needs tools; with it, a "
        "JSON text.format applies to a later text answer, not to this turn's call."))
    return {**_items(cfg), "ResponsesTool": tool, "ResponsesRequest": request}


def response_schema() -> Schema:
    """The response object (non-streamed; the last streamed event carries the same)."""
    message = obj({"id": text(), "type": {"const": "message"}, "role": {"const": "assistant"},
                   "status": text(), "content": {"type": "array", "items": obj({
                       "type": {"const": "output_text"}, "text": text(),
                       "annotations": {"type": "array"}, "logprobs": {"type": "array"}},
                       ("type", "text"), closed=False)}},
                  ("id", "type", "role", "content"), closed=False)
    call = obj({"id": text(), "type": {"const": "function_call"}, "call_id": text(),
                "name": text(), "arguments": text(), "status": text()},
               ("type", "call_id", "name", "arguments"), closed=False)
    reasoning = obj({"id": text(), "type": {"const": "reasoning"}, "summary": {"type": "array"},
                     "content": {"type": "array", "items": obj({
                         "type": {"const": "reasoning_text"}, "text": text()}, ("type", "text"))},
                     "status": text()}, ("id", "type", "summary"), closed=False,
                    description="a reasoning model's thinking (gateway.reasoning_parser)")
    usage = obj({"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                 "total_tokens": {"type": "integer"},
                 "input_tokens_details": obj({"cached_tokens": {"type": "integer"}},
                                             closed=False),
                 "output_tokens_details": obj({"reasoning_tokens": {"type": "integer"}},
                                              closed=False)},
                ("input_tokens", "output_tokens", "total_tokens"), closed=False)
    return obj({
        "id": text(), "object": {"const": "response"}, "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete"]}, "model": text(),
        "output": {"type": "array", "items": {"oneOf": [reasoning, message, call]}},
        "incomplete_details": {"oneOf": [NULL, obj({"reason": text()}, ("reason",),
                                                    closed=False)]},
        "usage": usage, "ostinato": ref("Ostinato"), "store": {"type": "boolean"},
        "conversation": nullable(obj({"id": text()}, ("id",))),
        "previous_response_id": nullable(text()),
    }, ("id", "object", "created_at", "status", "model", "output", "usage", "ostinato"),
        closed=False, description="OpenAI's response object; `incomplete` when cut at "
                                  "max_output_tokens")


def item_list_schema() -> dict[str, Schema]:
    """A listed item (GET /v1/responses/{id}/input_items, the Conversations API's items)
    and OpenAI's list of them."""
    item = obj({"id": text(), "type": {"enum": ["message", "function_call",
                                                "function_call_output"]},
                "status": text(), "role": {"enum": ["user", "system", "developer",
                                                    "assistant"]},
                "content": {"type": "array"}, "call_id": text(), "name": text(),
                "arguments": text(), "output": text()},
               ("id", "type"), closed=False)
    return {"ResponseItem": item, "ResponseItemList": obj({
        "object": {"const": "list"}, "data": {"type": "array", "items": ref("ResponseItem")},
        "first_id": nullable(text()), "last_id": nullable(text()),
        "has_more": {"type": "boolean"}},
        ("object", "data", "first_id", "last_id", "has_more"),
        description="OpenAI's list of response items; first_id and last_id are null when "
                    "data is empty")}
