"""An OpenAI chat request's tools and output constraints -> the CallSpec's: an assistant
message's `tool_calls`, `tools` (functions only), `tool_choice`, `response_format` (text,
json_object, json_schema). Pure; each refusal a 400 naming its field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.openai_fields import BadRequest, optional
from ostinato.tool_choice import tool_choice
from ostinato.v1 import common_pb2


def tool_calls_of(m: Mapping[str, Any], i: int) -> list[common_pb2.ToolCall]:
    raw = m.get("tool_calls")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest(f"messages[{i}].tool_calls must be an array", "messages")
    out = []
    for j, tc in enumerate(raw):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or tc.get("type") not in (None, "function"):
            raise BadRequest(f"{where} must be {{\"type\": \"function\", \"function\": {{...}}}}",
                             "messages")
        args = fn.get("arguments", "{}")
        if isinstance(args, dict):
            args = json.dumps(args, ensure_ascii=False)
        if not isinstance(fn.get("name"), str) or not isinstance(args, str):
            raise BadRequest(f"{where}.function needs a string name and arguments", "messages")
        try:
            call_id = optional(tc.get("id"), str, "")
        except ValueError as exc:
            raise BadRequest(f"{where}.id must be a string", "messages") from exc
        out.append(common_pb2.ToolCall(id=call_id, name=fn["name"], arguments=args))
    return out


def tools_of(body: Mapping[str, Any]) -> list[common_pb2.Tool]:
    raw = body.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("tools must be an array", "tools")
    out = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or t.get("type") != "function":
            raise BadRequest(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{...}}}} "
                             "(only function tools are supported)", "tools")
        name, params = fn.get("name"), fn.get("parameters")
        if not isinstance(name, str):
            raise BadRequest(f"tools[{i}].function.name must be a string", "tools")
        if params is not None and not isinstance(params, dict):
            raise BadRequest(f"tools[{i}].function.parameters must be an object", "tools")
        try:
            description = optional(fn.get("description"), str, "")
            strict = optional(fn.get("strict"), bool, False)
        except ValueError as exc:
            raise BadRequest(f"tools[{i}].function: description must be a string and strict "
                             "true or false", "tools") from exc
        out.append(common_pb2.Tool(
            name=name, description=description, strict=strict,
            parameters_json=json.dumps(params, ensure_ascii=False) if params is not None else ""))
    return out


def tool_choice_of(body: Mapping[str, Any]) -> common_pb2.ToolChoice:
    try:
        return tool_choice(body.get("tool_choice"))
    except ValueError as exc:
        raise BadRequest(str(exc), "tool_choice") from exc


def response_format_of(body: Mapping[str, Any]) -> common_pb2.ResponseFormat:
    raw = body.get("response_format")
    if raw is None:
        return common_pb2.ResponseFormat()
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_TEXT)
    if kind == "json_object":
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise BadRequest("response_format.json_schema.schema must be an object (a JSON schema)",
                             "response_format")
        try:
            name = optional(spec.get("name"), str, "")
            strict = optional(spec.get("strict"), bool, False)
        except ValueError as exc:
            raise BadRequest("response_format.json_schema: name must be a string and strict "
                             "true or false", "response_format") from exc
        return common_pb2.ResponseFormat(
            type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name=name, strict=strict,
            schema_json=json.dumps(spec["schema"], ensure_ascii=False))
    raise BadRequest("response_format.type must be text, json_object or json_schema",
                     "response_format")
