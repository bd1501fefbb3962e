"""Ostinato results -> OpenAI response JSON (chat completions, completions, SSE chunks,
errors, models). Pure: no I/O, no aiohttp."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import grpc

from cache.modes import HIT_HEADER, hit_header
from ostinato.v1 import common_pb2


def usage_json(usages: Sequence[common_pb2.Usage], per_prompt: int = 0) -> dict[str, Any]:
    """The answers' usage; the n answers of one prompt count it once. `per_prompt`: answers
    of each prompt, in order (/v1/completions' prompts); 0: all of one prompt."""
    size = per_prompt or max(1, len(usages))
    groups = [usages[i:i + size] for i in range(0, len(usages), size)]
    prompt = sum(max(u.prompt_tokens for u in g) for g in groups)
    completion = sum(u.completion_tokens for u in usages)
    cached = sum(max(u.cached_tokens for u in g) for g in groups)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {
                "reasoning_tokens": sum(u.reasoning_tokens for u in usages)}}


# The program a request runs in: the request's (its header names it), and every answer's
# (the header names it before the first event of a stream: a client that leaves a stream
# early knows it; the `ostinato` object names it again, last)
PROGRAM_HEADER = "X-Ostinato-Program"


def answer_headers(program_id: str, cache_hit: int) -> dict[str, str]:
    """An answer's HTTP headers: its program, and whether it came from a cache."""
    return {PROGRAM_HEADER: program_id, HIT_HEADER: hit_header(cache_hit)}


def extension_json(program_id: str, call: common_pb2.CallSpec,
                   result: common_pb2.CallResult) -> dict[str, Any]:
    """The `ostinato` object of every response: where the call ran in the mesh."""
    return {"program_id": program_id, "call_id": result.call_id, "thread_id": call.thread_id,
            "parent_call_ids": list(call.parent_call_ids), "worker_id": result.worker_id,
            "cache_hit": hit_header(result.cache_hit), "simulated": result.simulated,
            "queue_s": round(result.timings.queue_s, 6), "total_s": round(result.timings.total_s, 6)}


def tool_calls_json(calls: Sequence[common_pb2.ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def logprobs_json(result: common_pb2.CallResult) -> dict[str, Any] | None:
    if not result.logprobs:
        return None
    return {"content": [{**_token(t.token, t.logprob),
                         "top_logprobs": [_token(a.token, a.logprob) for a in t.top_logprobs]}
                        for t in result.logprobs]}


def legacy_logprobs_json(result: common_pb2.CallResult) -> dict[str, Any] | None:
    """/v1/completions' logprobs: tokens, their logprobs, the top alternatives, and where
    each token starts in the completion's text."""
    if not result.logprobs:
        return None
    offsets = list(accumulate((len(t.token) for t in result.logprobs[:-1]), initial=0))
    return {"tokens": [t.token for t in result.logprobs],
            "token_logprobs": [t.logprob for t in result.logprobs],
            "top_logprobs": [{a.token: a.logprob for a in t.top_logprobs}
                             for t in result.logprobs],
            "text_offset": offsets}


def message_json(result: common_pb2.CallResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant",
                               "content": result.text if result.text or not result.tool_calls
                               else None}
    if result.reasoning_content:  # as SGLang's and DeepSeek's APIs give a model's thinking
        message["reasoning_content"] = result.reasoning_content
    if result.tool_calls:
        message["tool_calls"] = tool_calls_json(result.tool_calls)
    return message


def choice_json(index: int, result: common_pb2.CallResult) -> dict[str, Any]:
    return {"index": index, "message": message_json(result),
            "finish_reason": result.finish_reason or "stop", "logprobs": logprobs_json(result)}


def completion_json(completion_id: str, model: str, created: int, program_id: str,
                    calls: Sequence[common_pb2.CallSpec],
                    results: Sequence[common_pb2.CallResult]) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [choice_json(i, r) for i, r in enumerate(results)],
        "usage": usage_json([r.usage for r in results]),
        "ostinato": extension_json(program_id, calls[0], results[0]),
    }


def text_completion_json(completion_id: str, model: str, created: int, program_id: str,
                         calls: Sequence[common_pb2.CallSpec],
                         results: Sequence[common_pb2.CallResult],
                         per_prompt: int = 1) -> dict[str, Any]:
    """POST /v1/completions: a choice per answer, the n answers of each prompt in turn.
    Logprobs in the legacy shape (tokens, token_logprobs, ...)."""
    return {"id": completion_id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": i, "text": r.text, "logprobs": legacy_logprobs_json(r),
                         "finish_reason": r.finish_reason or "stop"}
                        for i, r in enumerate(results)],
            "usage": usage_json([r.usage for r in results], per_prompt),
            "ostinato": extension_json(program_id, calls[0], results[0])}


def chunk_sse(completion_id: str, model: str, created: int, delta: dict[str, Any],
              finish_reason: str | None = None, usage: dict[str, Any] | None = None,
              extension: dict[str, Any] | None = None, index: int = 0,
              obj: str = "chat.completion.chunk",
              logprobs: dict[str, Any] | None = None, with_usage: bool = False) -> bytes:
    """One chunk event. `with_usage`: the stream asked for usage (include_usage): a chunk
    without it carries `"usage": null`, as OpenAI's do before the last."""
    chunk: dict[str, Any] = {
        "id": completion_id, "object": obj, "created": created, "model": model,
        "choices": [] if usage is not None else [
            {"index": index, "delta": delta, "finish_reason": finish_reason,
             "logprobs": logprobs}
            if obj == "chat.completion.chunk" else
            {"index": index, "text": delta.get("content", ""), "finish_reason": finish_reason,
             "logprobs": logprobs}],
    }
    if usage is not None or with_usage:
        chunk["usage"] = usage
    if extension is not None:
        chunk["ostinato"] = extension
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def tool_call_deltas(calls: Sequence[common_pb2.ToolCall]) -> list[dict[str, Any]]:
    """OpenAI's streamed tool calls: per call, a delta with its index, id, type and name,
    then one with its arguments (clients concatenate argument pieces by index)."""
    out = []
    for i, c in enumerate(calls):
        out.append({"tool_calls": [{"index": i, "id": c.id, "type": "function",
                                    "function": {"name": c.name, "arguments": ""}}]})
        out.append({"tool_calls": [{"index": i, "function": {"arguments": c.arguments}}]})
    return out


def model_json(model: str, created: int, context_length: int = 0) -> dict[str, Any]:
    """The served model; `context_length` (the gateway's window, 0: unknown) as vLLM and
    SGLang name it, `max_model_len`, which clients read to size their prompts."""
    out: dict[str, Any] = {"id": model, "object": "model", "created": created,
                           "owned_by": "ostinato", "root": model, "parent": None}
    if context_length > 0:
        out["max_model_len"] = context_length
    return out


def models_json(model: str, created: int, context_length: int = 0) -> dict[str, Any]:
    return {"object": "list", "data": [model_json(model, created, context_length)]}


def error_json(message: str, kind: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# gRPC status -> (HTTP status, OpenAI error type): OpenAI's API calls a bad key and a missing
# resource invalid_request_error too (the status tells them apart; HTTP review 2026-12-05 F6)
HTTP_FOR_GRPC: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "invalid_request_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
}


# OpenAI's error code where a status names one and the error itself names none
OPENAI_ERROR_CODES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: "rate_limit_exceeded",
    grpc.StatusCode.UNAUTHENTICATED: "invalid_api_key"}


def http_status(code: grpc.StatusCode) -> tuple[int, str]:
    return HTTP_FOR_GRPC.get(code, (500, "api_error"))
