"""The OpenAPI 3.1 document of the gateway's HTTP API, served at GET /openapi.json.

Data, written to match what gateway/http_api.py and gateway/openai_format.py accept and
gateway/openai_response.py returns; limits come from the gateway's config, so the document
a gateway serves states its own. tests/gateway/test_openapi.py checks that the router and
the document name the same routes, and tests/fuzz/test_http_fuzz.py drives the live API
from the served document (schemathesis) and checks every response against it.
docs/reference/http.md is generated from it (ostinato/openapi_reference.py).
"""

from __future__ import annotations

from typing import Any

from cache.modes import HIT_HEADER, REQUEST_HEADER
from ostinato.config import GatewayConfig

OPEN_ROUTES = frozenset({"/health", "/metrics", "/openapi.json"})  # no API key needed

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = True,
         description: str = "") -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def _str(description: str = "", **kw: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **kw}


def _num(lo: float, hi: float, description: str = "") -> Schema:
    return {"type": "number", "minimum": lo, "maximum": hi, "description": description}


_NULL = {"type": "null"}


def _schemas(cfg: GatewayConfig) -> dict[str, Schema]:
    text_part = _obj({"type": {"const": "text"}, "text": _str()}, ("type", "text"),
                     closed=False)
    tool_call = _obj({
        "id": _str(), "type": {"const": "function"},
        "function": _obj({"name": _str(), "arguments": _str(
            "a JSON object, as text (an object is accepted too)")}, ("name",), closed=False),
    }, ("function",), closed=False)
    message = _obj({
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"],
                 "description": "developer is read as system"},
        "content": {"oneOf": [_str(maxLength=cfg.max_prompt_chars),
                              {"type": "array", "items": text_part}, _NULL],
                    "description": "text, or text parts; null only on an assistant message"},
        "name": _str(), "tool_call_id": _str("the tool call a tool message answers"),
        "tool_calls": {"type": "array", "items": tool_call,
                       "description": "an assistant message's tool calls"},
    }, ("role",), closed=False)
    tool = _obj({"type": {"const": "function"}, "function": _obj({
        "name": _str("1 to 64 letters, digits, _ or -", pattern="^[A-Za-z0-9_-]{1,64}$"),
        "description": _str(), "strict": {"type": "boolean"},
        "parameters": {"type": "object", "description": "a JSON schema (draft 2020-12)"},
    }, ("name",), closed=False)}, ("type", "function"), closed=False)
    tool_choice = {"oneOf": [{"enum": ["auto", "none", "required"]}, _obj(
        {"type": {"const": "function"}, "function": _obj({"name": _str()}, ("name",),
                                                         closed=False)},
        ("type", "function"), closed=False)]}
    response_format = {"oneOf": [
        _obj({"type": {"enum": ["text", "json_object"]}}, ("type",), closed=False),
        _obj({"type": {"const": "json_schema"}, "json_schema": _obj({
            "name": _str(), "strict": {"type": "boolean"},
            "schema": {"type": "object", "description": "a JSON schema (draft 2020-12)"},
        }, ("schema",), closed=False)}, ("type", "json_schema"), closed=False)]}
    extension = _obj({
        "call_id": _str("the call's id in its program (at most 128 characters, no '/')",
                        maxLength=128, pattern="^[^/]*$"),
        "thread_id": _str("its thread (parallel branch)"),
        "parent_call_ids": {"type": "array", "items": _str(),
                            "description": "calls of the same program it depends on"},
        "expected_output_tokens": {"type": "integer", "description": "a hint for the planner"},
    }, description="Ostinato's extension: where the call sits in its program")
    max_tokens = {"type": "integer", "minimum": 1, "maximum": cfg.max_new_tokens_limit,
                  "description": f"default {cfg.default_max_new_tokens}"}
    common: dict[str, Schema] = {
        "model": {"enum": [cfg.model], "description": "the served model (optional)"},
        "max_tokens": max_tokens,
        "temperature": _num(0, 2), "top_p": {"type": "number", "exclusiveMinimum": 0,
                                              "maximum": 1},
        "seed": {"type": "integer", "minimum": 0},
        "presence_penalty": _num(-2, 2), "frequency_penalty": _num(-2, 2),
        "stop": {"oneOf": [_str(), {"type": "array", "items": _str(), "maxItems": 4}]},
        "stream": {"type": "boolean", "description": "answer as server-sent events"},
        "stream_options": _obj({"include_usage": {"type": "boolean"}}, closed=False),
        "user": {"description": "ignored"}, "metadata": {"description": "ignored"},
        "store": {"description": "ignored"}, "service_tier": {"description": "ignored"},
        "ostinato": _ref("OstinatoRequest"),
    }
    chat_request = _obj({
        **common,
        "messages": {"type": "array", "items": _ref("Message"), "minItems": 1,
                     "maxItems": cfg.max_messages},
        "max_completion_tokens": max_tokens,
        "tools": {"type": "array", "items": _ref("Tool")}, "tool_choice": tool_choice,
        "parallel_tool_calls": {"type": "boolean"}, "response_format": response_format,
        "logprobs": {"type": "boolean"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "n": {"type": "integer", "minimum": 1, "maximum": 8,
              "description": "answers; more than 1 cannot be streamed"},
    }, ("messages",), description=(
        "OpenAI's chat-completions request. Fields that would change the answer but are not "
        "supported (logit_bias, audio, functions, ...) and unknown fields are refused (400), "
        "never dropped; `cache_salt` is refused (the gateway derives it from the API key)."))
    completion_request = _obj({
        **common,
        "prompt": _str("the raw prompt (no chat template)", minLength=1,
                       maxLength=cfg.max_prompt_chars),
        "logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "n": {"const": 1},
    }, ("prompt",), description="OpenAI's (legacy) completions request: one raw prompt")
    usage = _obj({"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                  "total_tokens": {"type": "integer"},
                  "prompt_tokens_details": _obj({"cached_tokens": {"type": "integer"}})},
                 ("prompt_tokens", "completion_tokens", "total_tokens"))
    logprobs = {"oneOf": [_NULL, {"type": "object"}]}
    reply = _obj({"role": {"const": "assistant"}, "content": {"type": ["string", "null"]},
                  "tool_calls": {"type": "array", "items": tool_call}}, ("role", "content"))
    ostinato = _obj({
        "program_id": _str(), "call_id": _str(), "thread_id": _str(),
        "parent_call_ids": {"type": "array", "items": _str()}, "worker_id": _str(),
        "cache_hit": {"enum": ["miss", "exact", "semantic"]}, "simulated": {"type": "boolean"},
        "queue_s": {"type": "number"}, "total_s": {"type": "number"},
    }, ("program_id", "call_id"), description="where the call ran in the mesh")
    head = {"id": _str(), "created": {"type": "integer"}, "model": _str()}
    return {
        "Message": message, "Tool": tool, "OstinatoRequest": extension,
        "ChatCompletionRequest": chat_request, "CompletionRequest": completion_request,
        "Usage": usage, "Ostinato": ostinato,
        "ChatCompletion": _obj({**head, "object": {"const": "chat.completion"}, "choices": {
            "type": "array", "items": _obj({"index": {"type": "integer"}, "message": reply,
                                            "finish_reason": _str(), "logprobs": logprobs},
                                           ("index", "message", "finish_reason"))},
            "usage": _ref("Usage"), "ostinato": _ref("Ostinato")},
            ("id", "object", "created", "model", "choices", "usage", "ostinato")),
        "TextCompletion": _obj({**head, "object": {"const": "text_completion"}, "choices": {
            "type": "array", "items": _obj({"index": {"type": "integer"}, "text": _str(),
                                            "finish_reason": _str(), "logprobs": logprobs},
                                           ("index", "text", "finish_reason"))},
            "usage": _ref("Usage"), "ostinato": _ref("Ostinato")},
            ("id", "object", "created", "model", "choices", "usage", "ostinato")),
        "ModelList": _obj({"object": {"const": "list"}, "data": {"type": "array", "items": _obj(
            {"id": _str(), "object": {"const": "model"}, "created": {"type": "integer"},
             "owned_by": _str(), "root": _str(), "parent": _NULL}, ("id", "object"))}},
            ("object", "data")),
        "StartProgramRequest": _obj({
            "program_id": _str("client-chosen id (at most 128 characters, no '/'); the "
                               "gateway assigns one when absent", minLength=1, maxLength=128,
                               pattern="^[^/]*$"),
            "program_class": _str("free-form class used to learn output lengths",
                                  maxLength=128),
            "deadline_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 31_536_000,
                           "description": "relative deadline from the program's start, seconds"},
        }),
        "StartProgramResponse": _obj({"program_id": _str(), "tenant": _str()},
                                     ("program_id", "tenant")),
        "ProgramSummary": _obj({
            "program_id": _str(), "tenant": _str(), "calls_completed": {"type": "integer"},
            "calls_failed": {"type": "integer"}, "usage": _obj({
                k: {"type": "integer"} for k in ("prompt_tokens", "completion_tokens",
                                                 "cached_tokens")}),
            "attained_service_s": {"type": "number"}, "elapsed_s": {"type": "number"},
        }, description="the gRPC ProgramSummary in protobuf's JSON mapping (zero values "
                       "left out)"),
        "Error": _obj({"error": _obj({
            "message": _str(), "type": _str("OpenAI's error type, e.g. invalid_request_error"),
            "param": {"type": ["string", "null"], "description": "the request field at fault"},
            "code": {"type": ["string", "null"]}}, ("message", "type"))}, ("error",)),
    }


_ERRORS = {
    400: "invalid request: the message names the field at fault (`param`)",
    401: "no API key where one is required, or a key that is not valid",
    404: "an unknown (or ended, or another tenant's) program, or a model not served here",
    409: "a call or program id used twice (ALREADY_EXISTS), or an ended program",
    413: "the request body is larger than the gateway accepts",
    429: "a quota, the tenant's max_programs, or backpressure; retry after `Retry-After` s",
    503: "the mesh cannot serve now (planner or workers unavailable)",
    504: "the call's deadline passed",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": _ERRORS[c], "headers": _RETRY_AFTER if c == 429 else {},
                     "content": {"application/json": {"schema": _ref("Error")}}}
            for c in codes}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    return {"description": description, "headers": headers or {},
            "content": {"application/json": {"schema": schema}}}


_HIT = {HIT_HEADER: {"description": "whether the answer came from a cache",
                     "schema": {"enum": ["miss", "exact", "semantic"]}}}
_CALL_PARAMS = [
    {"name": "X-Ostinato-Program", "in": "header", "required": False, "schema": _str(),
     "description": "the program the call runs in; without it, the program whose "
                    "conversation it continues, else a new program (which expires when idle)"},
    {"name": REQUEST_HEADER, "in": "header", "required": False,
     "schema": _str(pattern="^(off|exact|semantic)(;threshold=(0\\.[0-9]*[1-9][0-9]*|1(\\.0+)?))?$"),
     "description": "cache mode: off, exact or semantic[;threshold=<(0, 1]>]"},
]
_CALL_ERRORS = (400, 401, 404, 409, 413, 429, 503, 504)


def _call_op(summary: str, request: str, answer: str, description: str) -> Schema:
    return {
        "summary": summary, "description": description, "parameters": _CALL_PARAMS,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref(request)}}},
        "responses": {"200": {
            "description": "the answer; with `stream: true`, server-sent events (`data: "
                           "{chunk}` lines ending with `data: [DONE]`; an error after the first "
                           "chunk arrives as `data: {\"error\": ...}`)",
            "headers": _HIT,
            "content": {"application/json": {"schema": _ref(answer)},
                        "text/event-stream": {"schema": {"type": "string"}}}},
            **_errors(*_CALL_ERRORS)},
    }


def _paths() -> dict[str, Any]:
    open_ = {"security": []}
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
        "/v1/models": {"get": {
            "summary": "The served model", "description": "OpenAI's model list: one entry.",
            "responses": {"200": _json(_ref("ModelList"), "the served model"),
                          **_errors(401)}}},
        "/v1/programs": {"post": {
            "summary": "Start a program",
            "description": "Starts a program (interactive: its calls name it with the "
                           "`X-Ostinato-Program` header); the body may be left out.",
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": _ref("StartProgramRequest")}}},
            "responses": {"200": _json(_ref("StartProgramResponse"), "the program started"),
                          **_errors(400, 401, 409, 429, 503)}}},
        "/v1/programs/{program_id}/end": {"post": {
            "summary": "End a program",
            "description": "Ends a program and returns its summary; ending it again returns "
                           "the same summary.",
            "parameters": [{"name": "program_id", "in": "path", "required": True,
                            "schema": _str()}],
            "responses": {"200": _json(_ref("ProgramSummary"), "the program's summary"),
                          **_errors(400, 401, 404, 503)}}},
        "/metrics": {"get": {
            **open_, "summary": "Prometheus metrics",
            "description": "The gateway's metrics in Prometheus's text format "
                           "(docs/operations/metrics.md); no API key (scraped by Prometheus).",
            "responses": {"200": {"description": "metrics", "content": {
                "text/plain": {"schema": {"type": "string"}}}}}}},
        "/health": {"get": {
            **open_, "summary": "Liveness", "description": "No API key.",
            "responses": {"200": _json(_obj({"status": {"const": "ok"}}, ("status",)),
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
                     "(`ostinato up --no-auth`), except /health, /metrics and /openapi.json. "
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
