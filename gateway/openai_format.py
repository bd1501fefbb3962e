"""OpenAI chat-completions JSON <-> Ostinato protos. Pure: no I/O, no aiohttp.

Requests: `model`, `messages` (string content or text parts), `max_tokens` /
`max_completion_tokens`, `temperature`, `top_p`, `stop`, `seed`, `n` (1 only), `stream`,
`stream_options.include_usage`, `user` (ignored), and the extension object `ostinato`
(`call_id`, `thread_id`, `parent_call_ids`, `expected_output_tokens`) for calls that belong to
a program. Anything that would change the answer and is not supported (tools, logprobs, ...)
is refused, never silently dropped; `cache_salt` is refused because the gateway derives it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import grpc

from cache.modes import InvalidCachePolicy, header_to_proto, hit_header
from ostinato.v1 import common_pb2


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


_IGNORED = {"user", "stream", "stream_options", "metadata", "store"}
_UNSUPPORTED = {"tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs",
                "response_format", "logit_bias", "presence_penalty", "frequency_penalty",
                "audio", "modalities", "prediction", "parallel_tool_calls"}
_KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
          "stop", "seed", "n", "ostinato", *_IGNORED}
_ROLES = {"system", "user", "assistant", "tool", "developer"}


def _number(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not float(value).is_integer()):
        raise BadRequest(f"{name} must be {'an integer' if kind is int else 'a number'}", name)
    return kind(value)


def _content(message: Mapping[str, Any], i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                    part.get("text"), str):
                raise BadRequest(f"messages[{i}].content[{j}]: only text parts are supported",
                                 "messages")
            parts.append(part["text"])
        return "".join(parts)
    if content is None and message.get("role") == "assistant":
        return ""
    raise BadRequest(f"messages[{i}].content must be a string or a list of text parts", "messages")


def _messages(body: Mapping[str, Any]) -> list[common_pb2.Message]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty array", "messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise BadRequest(f"messages[{i}] must be an object", "messages")
        role = m.get("role")
        if role not in _ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}",
                             "messages")
        if m.get("tool_calls"):
            raise BadRequest(f"messages[{i}].tool_calls: tools are not supported", "messages")
        out.append(common_pb2.Message(role="system" if role == "developer" else role,
                                      content=_content(m, i)))
    return out


def _sampling(body: Mapping[str, Any]) -> common_pb2.SamplingParams:
    sp = common_pb2.SamplingParams()
    max_tokens = _number(body, "max_completion_tokens", int)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", int)
    if max_tokens is not None:
        if max_tokens < 1:
            raise BadRequest("max_tokens must be at least 1", "max_tokens")
        sp.max_new_tokens = max_tokens
    for name in ("temperature", "top_p"):
        value = _number(body, name, float)
        if value is not None:
            setattr(sp, name, value)
    seed = _number(body, "seed", int)
    if seed is not None:
        if seed < 0:
            raise BadRequest("seed must not be negative", "seed")
        sp.seed = seed
    n = _number(body, "n", int)
    if n is not None and n != 1:
        raise BadRequest("n must be 1", "n")
    stop = body.get("stop")
    if isinstance(stop, str):
        sp.stop.append(stop)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        sp.stop.extend(stop)
    elif stop is not None:
        raise BadRequest("stop must be a string or an array of at most 4 strings", "stop")
    return sp


def _extension(call: common_pb2.CallSpec, ext: Any) -> None:
    if ext is None:
        return
    if not isinstance(ext, dict):
        raise BadRequest("ostinato must be an object", "ostinato")
    unknown = set(ext) - {"call_id", "thread_id", "parent_call_ids", "expected_output_tokens"}
    if unknown:
        raise BadRequest(f"ostinato: unknown field(s) {', '.join(sorted(unknown))}", "ostinato")
    for name in ("call_id", "thread_id"):
        if name in ext:
            if not isinstance(ext[name], str):
                raise BadRequest(f"ostinato.{name} must be a string", "ostinato")
            setattr(call, name, ext[name])
    parents = ext.get("parent_call_ids", [])
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise BadRequest("ostinato.parent_call_ids must be an array of strings", "ostinato")
    call.parent_call_ids.extend(parents)
    expected = _number(ext, "expected_output_tokens", int)
    if expected is not None:
        call.hints.expected_output_tokens = max(0, expected)


def call_from_openai(body: Any, cache_header: str | None) -> common_pb2.CallSpec:
    """A chat-completions request body (parsed JSON) as a CallSpec; raises BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if "cache_salt" in body:
        raise BadRequest("cache_salt is derived by the gateway from your API key; clients "
                         "cannot choose it", "cache_salt")
    unsupported = sorted(set(body) & _UNSUPPORTED)
    if unsupported:
        raise BadRequest(f"not supported by this gateway: {', '.join(unsupported)}", unsupported[0])
    unknown = sorted(set(body) - _KNOWN - _UNSUPPORTED)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    model = body.get("model", "")
    if not isinstance(model, str):
        raise BadRequest("model must be a string", "model")
    call = common_pb2.CallSpec(model=model, messages=_messages(body), sampling=_sampling(body))
    _extension(call, body.get("ostinato"))
    if cache_header is not None and cache_header.strip():
        try:
            call.cache.CopyFrom(header_to_proto(cache_header))
        except InvalidCachePolicy as exc:
            raise BadRequest(str(exc), "X-Ostinato-Cache") from exc
    return call


def wants_stream(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage) of a request body."""
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object", "stream_options")
    return stream, bool(options.get("include_usage", False))


def _usage(usage: common_pb2.Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}}


def extension_json(program_id: str, result: common_pb2.CallResult) -> dict[str, Any]:
    return {"program_id": program_id, "call_id": result.call_id, "worker_id": result.worker_id,
            "cache_hit": hit_header(result.cache_hit), "simulated": result.simulated,
            "queue_s": round(result.timings.queue_s, 6), "total_s": round(result.timings.total_s, 6)}


def completion_json(completion_id: str, model: str, program_id: str,
                    result: common_pb2.CallResult, created: int | None = None) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason or "stop", "logprobs": None}],
        "usage": _usage(result.usage),
        "ostinato": extension_json(program_id, result),
    }


def chunk_sse(completion_id: str, model: str, created: int, delta: dict[str, Any],
              finish_reason: str | None = None, usage: common_pb2.Usage | None = None,
              extension: dict[str, Any] | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion.chunk", "created": created,
        "model": model,
        "choices": [] if usage is not None else [
            {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        chunk["usage"] = _usage(usage)
    if extension is not None:
        chunk["ostinato"] = extension
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def error_json(message: str, kind: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# gRPC status -> (HTTP status, OpenAI error type)
HTTP_FOR_GRPC: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
}


def http_status(code: grpc.StatusCode) -> tuple[int, str]:
    return HTTP_FOR_GRPC.get(code, (500, "api_error"))
