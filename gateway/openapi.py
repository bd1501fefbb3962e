"""The OpenAPI 3.1 document of the gateway's HTTP API, served at GET /openapi.json.

Data, written to match what gateway/http_api.py and gateway/openai_format.py accept and
gateway/openai_response.py returns; limits come from the gateway's config, so the document
a gateway serves states its own. tests/gateway/test_openapi.py checks that the router and
the document name the same routes, and tests/fuzz/test_http_fuzz.py drives the live API
from the served document (schemathesis) and checks every response against it.
docs/reference/http.md is generated from it (ostinato/openapi_reference.py, `make docs`).
"""

from __future__ import annotations

from typing import Any

from cache.modes import HIT_HEADER, REQUEST_HEADER
from gateway.calls import ID_PATTERN, LABEL_PATTERN
from gateway.openapi_conversations import conversation_paths, conversation_schemas
from gateway.openapi_requests import NULL, Schema, nullable, obj, ref, request_schemas, text
from gateway.openapi_responses import (
    item_list_schema,
    response_request_schemas,
    response_schema,
)
from gateway.responses_format import INCLUDES
from gateway.responses_items import MAX_LIMIT
from ostinato.config import GatewayConfig
from ostinato.v1 import common_pb2

# the gRPC Usage message's fields, as protobuf's JSON mapping writes them (every one)
_USAGE = tuple(f.name for f in common_pb2.Usage.DESCRIPTOR.fields)
_SUMMARY = tuple(f.name for f in common_pb2.ProgramSummary.DESCRIPTOR.fields)

OPEN_ROUTES = frozenset({"/health", "/openapi.json"})  # no API key needed

def _schemas(cfg: GatewayConfig) -> dict[str, Schema]:
    tool_call = ref("ToolCall")
    usage = obj({"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                  "total_tokens": {"type": "integer"},
                  "prompt_tokens_details": obj({"cached_tokens": {"type": "integer"}}),
                  "completion_tokens_details": obj({"reasoning_tokens": {"type": "integer"}})},
                 ("prompt_tokens", "completion_tokens", "total_tokens"))
    logprobs = {"oneOf": [NULL, {"type": "object"}]}
    reply = obj({"role": {"const": "assistant"}, "content": {"type": ["string", "null"]},
                  "reasoning_content": text("a reasoning model's thinking before its answer "
                                            "(gateway.reasoning_parser)"),
                  "tool_calls": {"type": "array", "items": tool_call}}, ("role", "content"))
    ostinato = obj({
        "program_id": text(), "call_id": text(), "thread_id": text(),
        "parent_call_ids": {"type": "array", "items": text()}, "worker_id": text(),
        "cache_hit": {"enum": ["miss", "exact", "semantic"]}, "simulated": {"type": "boolean"},
        "queue_s": {"type": "number"}, "total_s": {"type": "number"},
    }, ("program_id", "call_id"), description="where the call ran in the mesh")
    head = {"id": text(), "created": {"type": "integer"}, "model": text()}
    requests = request_schemas(cfg)
    return {
        **requests, **response_request_schemas(cfg, requests["ChatCompletionRequest"]),
        "Response": response_schema(), **item_list_schema(), **conversation_schemas(cfg),
        "Usage": usage,
        "Ostinato": ostinato,
        "ChatCompletion": obj({**head, "object": {"const": "chat.completion"}, "choices": {
            "type": "array", "items": obj({"index": {"type": "integer"}, "message": reply,
                                            "finish_reason": text(), "logprobs": logprobs},
                                           ("index", "message", "finish_reason"))},
            "usage": ref("Usage"), "ostinato": ref("Ostinato")},
            ("id", "object", "created", "model", "choices", "usage", "ostinato")),
        "TextCompletion": obj({**head, "object": {"const": "text_completion"}, "choices": {
            "type": "array", "items": obj({"index": {"type": "integer"}, "text": text(),
                                            "finish_reason": text(), "logprobs": logprobs},
                                           ("index", "text", "finish_reason"))},
            "usage": ref("Usage"), "ostinato": ref("Ostinato")},
            ("id", "object", "created", "model", "choices", "usage", "ostinato")),
        "Model": obj({"id": text(), "object": {"const": "model"}, "created": {"type": "integer"},
                      "owned_by": text(), "root": text(), "parent": NULL,
                      "max_model_len": {"type": "integer", "minimum": 1, "description":
                                        "the context window in tokens, where it is known"}},
                     ("id", "object")),
        "ModelList": obj({"object": {"const": "list"}, "data": {"type": "array",
                                                                "items": ref("Model")}},
                         ("object", "data")),
        "StartProgramRequest": obj({
            "program_id": nullable(text(
                "client-chosen id (at most 128 characters, no '/', not '.' or '..', which no "
                "URL path can carry to its end route); the gateway assigns one when it is "
                "empty or left out", maxLength=128, pattern=ID_PATTERN,
                **{"not": {"enum": [".", ".."]}})),
            "program_class": nullable(text("free-form class used to learn output lengths "
                                           "(no control characters)", maxLength=128,
                                           pattern=LABEL_PATTERN)),
            "deadline_s": nullable({"type": "number", "minimum": 1e-6, "maximum": 31_536_000,
                                    "description": "relative deadline from the program's "
                                                   "start, seconds (a microsecond at least)"}),
            "reject_when_late": nullable({"type": "boolean", "description": (
                "calls after the deadline are refused (HTTP 504, DEADLINE_EXCEEDED) instead "
                "of demoted; under the slack policy, as soon as it cannot be met")}),
        }, description="null stands for a field left out"),
        "StartProgramResponse": obj({"program_id": text(), "tenant": text()},
                                     ("program_id", "tenant")),
        "ProgramSummary": obj({
            "program_id": text(), "tenant": text(), "calls_completed": {"type": "integer"},
            "calls_failed": {"type": "integer"}, "calls_cancelled": {"type": "integer"},
            "calls_running": {"type": "integer"},
            "usage": obj({
                k: {"type": "integer"} for k in _USAGE}, _USAGE),
            "attained_service_s": {"type": "number"}, "elapsed_s": {"type": "number"},
        }, _SUMMARY, description="the gRPC ProgramSummary in protobuf's JSON mapping, every "
                                 "field present (zeros too)"),
        "Error": obj({"error": obj({
            "message": text(), "type": text("OpenAI's error type, e.g. invalid_request_error"),
            "param": {"type": ["string", "null"], "description": "the request field at fault"},
            "code": {"type": ["string", "null"]}}, ("message", "type"))}, ("error",)),
    }


_ERRORS = {
    400: "invalid request: the message names the field at fault (`param`)",
    401: "no API key where one is required, or a key that is not valid",
    404: "an unknown (or ended, or another tenant's) program, or a model not served here",
    409: "a call or program id used twice (ALREADY_EXISTS), or an ended program; never "
         "retryable as it is (`x-should-retry: false`)",
    413: "the request body is larger than the gateway accepts",
    429: "a quota, the tenant's max_programs, the tenant's conversations cap, or backpressure; "
         "retry after `Retry-After` s (without it and with `x-should-retry: false`: a limit no "
         "retry meets as it is, e.g. a prompt past the tenant's tokens per minute)",
    503: "the mesh cannot serve now (planner or workers unavailable)",
    504: "the call's deadline passed",
}
_SHOULD_RETRY = {"x-should-retry": {"description": "`false`: the same request fails again",
                                    "schema": {"type": "string", "enum": ["false"]}}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}},
                **_SHOULD_RETRY}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": _ERRORS[c],
                     "headers": _RETRY_AFTER if c == 429 else _SHOULD_RETRY if c == 409 else {},
                     "content": {"application/json": {"schema": ref("Error")}}}
            for c in codes}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    return {"description": description, "headers": headers or {},
            "content": {"application/json": {"schema": schema}}}


_ANSWER_HEADERS = {
    HIT_HEADER: {"description": "whether the answer came from a cache",
                 "schema": {"enum": ["miss", "exact", "semantic"]}},
    "X-Ostinato-Program": {"description": "the program the call ran in (as the `ostinato` "
                           "object names it; a stream names it here before its first event)",
                           "schema": text(maxLength=128)}}
_CALL_PARAMS = [
    {"name": "X-Ostinato-Program", "in": "header", "required": False,
     "schema": text(maxLength=128, pattern=ID_PATTERN),
     "description": "the program the call runs in; without it, the program whose "
                    "conversation it continues, else a new program (which expires when idle)"},
    {"name": REQUEST_HEADER, "in": "header", "required": False,
     "schema": text(pattern="^(|off|exact|semantic(;threshold=(0\\.[0-9]*[1-9][0-9]*|1(\\.0+)?))?)$"),
     "description": "cache mode: off, exact or semantic[;threshold=<(0, 1]>]; empty: the "
                    "gateway's default"},
]
# OpenAPI 3.1: a text/event-stream schema describes each event
_SSE_EVENT = obj({"data": text("a chunk as JSON (`chat.completion.chunk` or `text_completion`), "
                               "an error as `{\"error\": ...}`, or `[DONE]` last")},
                 ("data",), closed=False, description="one server-sent event")
_CALL_ERRORS = (400, 401, 404, 409, 413, 429, 503, 504)


_RESPONSE_EVENT = obj({"event": text("the event's type"), "data": text(
    "the event as JSON: response.created, response.output_text.delta, ..., and last "
    "response.completed (or response.incomplete, or response.failed with the error)")},
    ("data",), closed=False, description="one server-sent event")


def _call_op(summary: str, request: str, answer: str, description: str,
             events: Schema = _SSE_EVENT,
             streamed: str = "server-sent events (`data: {chunk}` lines ending with `data: "
                             "[DONE]`; an error after the first chunk arrives as `data: "
                             "{\"error\": ...}`)") -> Schema:
    return {
        "summary": summary, "description": description, "parameters": _CALL_PARAMS,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": ref(request)}}},
        "responses": {"200": {
            "description": f"the answer; with `stream: true`, {streamed}",
            "headers": _ANSWER_HEADERS,
            "content": {"application/json": {"schema": ref(answer)},
                        "text/event-stream": {"schema": events}}},
            **_errors(*_CALL_ERRORS)},
    }


_RESPONSE_ID = {"name": "response_id", "in": "path", "required": True, "schema": text()}
_INCLUDE_QUERY = {
    "name": "include", "in": "query", "required": False,
    "schema": {"type": "array", "items": {"enum": sorted(INCLUDES)}},
    "description": "accepted; the items hold these fields already"}
_ITEM_PAGE_QUERY = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
     "description": f"items per page, 1-{MAX_LIMIT} (20)"},
    {"name": "order", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]},
     "description": "desc (newest first, the default) or asc"},
    {"name": "after", "in": "query", "required": False, "schema": text(),
     "description": "an item id of the list: the items after it"},
    {"name": "before", "in": "query", "required": False, "schema": text(),
     "description": "an item id of the list: the items before it"},
    _INCLUDE_QUERY,
]


def _paths() -> dict[str, Any]:
    open_: dict[str, Any] = {"security": []}
    return {
        "/v1/chat/completions": {"post": _call_op(
            "Chat completion", "ChatCompletionRequest", "ChatCompletion",
            "OpenAI's chat completions: tools (the model's tool calls parsed into "
            "`tool_calls`), `response_format` (json_object, json_schema: constrained decoding), "
            "logprobs, `n` answers, streaming. The prompt is rendered with the served model's "
            "chat template. The response's `ostinato` object says where the call ran.")},
        "/v1/completions": {"post": _call_op(
            "Text completion", "CompletionRequest", "TextCompletion",
            "A raw prompt, no chat template; one answer, streamed with `stream: true`.")},
        "/v1/responses": {"post": _call_op(
            "Response", "ResponsesRequest", "Response",
            "OpenAI's Responses API (the OpenAI Agents SDK's default model calls it), served "
            "on the chat path: `instructions` and `input` items (messages, function_call, "
            "function_call_output) in, a message item and function_call items out; function "
            "tools, `text.format` (json_object, json_schema), `max_output_tokens`. A finished "
            "response is stored for its tenant unless `store` is false: "
            "`previous_response_id` continues it (the call joins the same program).",
            events=_RESPONSE_EVENT,
            streamed="server-sent events (`event: TYPE` and `data: {event}` lines, from "
                     "response.created to response.completed; an error after the first "
                     "event arrives as response.failed)")},
        "/v1/responses/{response_id}": {
            "get": {
                "summary": "A stored response",
                "description": "A response the caller's tenant stored (POST /v1/responses "
                               "without `store: false`), until gateway.responses_ttl_s; "
                               "another tenant's is not found.",
                "parameters": [_RESPONSE_ID, _INCLUDE_QUERY, {
                    "name": "stream", "in": "query", "required": False,
                    "schema": {"type": "boolean", "const": False},
                    "description": "false only: the stored response is returned whole "
                                   "(replaying it as events is not supported; true is a 400)"}],
                "responses": {"200": _json(ref("Response"), "the stored response"),
                              **_errors(400, 401, 404, 503)}},
            "delete": {
                "summary": "Delete a stored response",
                "description": "Forgets a stored response: previous_response_id and GET no "
                               "longer find it.",
                "parameters": [_RESPONSE_ID],
                "responses": {"200": _json(obj({
                    "id": text(), "object": {"const": "response"},
                    "deleted": {"const": True}}, ("id", "object", "deleted")),
                    "the response is gone"),
                    **_errors(401, 404, 503)}}},
        "/v1/responses/{response_id}/input_items": {"get": {
            "summary": "A stored response's input items",
            "description": "The items a stored response was generated from: the turns it "
                           "continues (each one's input and output; one deleted or expired "
                           "since is left out) and its own input, paged by item id.",
            "parameters": [_RESPONSE_ID, *_ITEM_PAGE_QUERY],
            "responses": {"200": _json(ref("ResponseItemList"), "one page of items"),
                          **_errors(400, 401, 404, 503)}}},
        **conversation_paths(_ITEM_PAGE_QUERY, _json, _errors),
        "/v1/models": {"get": {
            "summary": "The served model", "description": "OpenAI's model list: one entry.",
            "responses": {"200": _json(ref("ModelList"), "the served model"),
                          **_errors(401)}}},
        "/v1/models/{model}": {"get": {
            "summary": "One model", "description": "OpenAI's model retrieval: the served model; "
                                                   "any other is a 404.",
            "parameters": [{"name": "model", "in": "path", "required": True,
                            "schema": text()}],
            "responses": {"200": _json(ref("Model"), "the served model"),
                          **_errors(401, 404)}}},
        "/v1/programs": {"post": {
            "summary": "Start a program",
            "description": "Starts a program (interactive: its calls name it with the "
                           "`X-Ostinato-Program` header); the body may be left out.",
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": ref("StartProgramRequest")}}},
            "responses": {"200": _json(ref("StartProgramResponse"), "the program started"),
                          **_errors(400, 401, 409, 429, 503)}}},
        "/v1/programs/{program_id}/end": {"post": {
            "summary": "End a program",
            "description": "Ends a program and returns its summary; ending it again returns "
                           "the same summary.",
            "parameters": [{"name": "program_id", "in": "path", "required": True,
                            "schema": text(pattern=LABEL_PATTERN)}],
            "responses": {"200": _json(ref("ProgramSummary"), "the program's summary"),
                          **_errors(400, 401, 404, 503)}}},
        "/health": {"get": {
            **open_, "summary": "Liveness", "description": "No API key.",
            "responses": {"200": _json(obj({"status": {"const": "ok"}}, ("status",)),
                                       "the gateway is up")}}},
        "/openapi.json": {"get": {
            **open_, "summary": "This document", "description": "No API key, like OpenAI's.",
            "responses": {"200": _json({"type": "object"}, "the OpenAPI document")}}},
    }


def document(cfg: GatewayConfig) -> dict[str, Any]:
    """The OpenAPI document of a gateway with this config."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ostinato gateway HTTP API", "version": "1",
                 "description": (
                     "The OpenAI-compatible HTTP API of the Ostinato gateway, beside its gRPC "
                     "API. Send the API key as `Authorization: Bearer <key>` (or `x-api-key`); "
                     "every route needs one unless the gateway runs with `allow_anonymous` "
                     "(`ostinato up --no-auth`), except /health and /openapi.json. Prometheus "
                     "metrics are served on the gateway's internal metrics_port, not here. "
                     "Errors use OpenAI's JSON shape with the HTTP status of the gRPC code the "
                     "same failure gets on the gRPC API.")},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(cfg),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
