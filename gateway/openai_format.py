"""OpenAI chat-completions and completions request JSON -> Ostinato CallSpecs. Pure.

Requests: `model`, `messages` (string content or text parts; assistant `tool_calls`, `tool`
messages with `tool_call_id`), `tools` (functions), `tool_choice` (auto, none, required, a
named function), `parallel_tool_calls`, `response_format` (text, json_object, json_schema),
`max_tokens` / `max_completion_tokens`, `temperature`, `top_p`, `stop`, `seed`,
`presence_penalty`, `frequency_penalty`, `logit_bias`, `logprobs` / `top_logprobs`, `n`, `stream`,
`stream_options.include_usage`, SGLang's extensions `top_k`, `min_p`, `repetition_penalty`,
`min_tokens`, `ignore_eos`, `chat_template_kwargs`, `reasoning_effort` and SGLang's
`separate_reasoning` / `stream_reasoning` (reasoning models), `user` / `metadata` / `store` /
`prompt_cache_key` / `safety_identifier` / `verbosity` ... (ignored: they do not change the
answer here), and the extension object `ostinato` (`call_id`, `thread_id`,
`parent_call_ids`, `expected_output_tokens`). Anything else that would change
the answer (audio, image parts, `functions`, ...) is refused with the field named, never
silently dropped; `cache_salt` is refused because the gateway derives it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cache.modes import InvalidCachePolicy, header_to_proto
from gateway.openai_fields import (
    BadRequest,
    check_metadata,
    check_service_tier,
    number,
    optional,
)
from gateway.openai_sampling import SGLANG_EXTENSIONS, UINT32_MAX, sampling
from gateway.openai_tools import response_format_of, tool_calls_of, tool_choice_of, tools_of
from gateway.prompts import REASONING_EFFORTS
from ostinato.v1 import common_pb2

# OpenAI's reasoning_effort, SGLang's separate_reasoning and stream_reasoning
REASONING_FIELDS = ("reasoning_effort", "separate_reasoning", "stream_reasoning")
# taken, without effect here: no prompt cache of OpenAI's to key or keep, no moderation,
# no service tiers; verbosity grades what GPT-5 writes (as the Responses API's
# text.verbosity, which is taken alike)
_IGNORED = {"user", "stream", "stream_options", "metadata", "store", "service_tier",
            "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
            "safety_identifier", "verbosity"}
UNSUPPORTED_FIELDS = {"functions", "function_call", "audio", "prediction",
                      "web_search_options", "suffix", "echo", "best_of"}
_KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
          "stop", "seed", "n", "ostinato", "tools", "tool_choice", "parallel_tool_calls",
          "response_format", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty",
          "logit_bias", "modalities", "chat_template_kwargs", *REASONING_FIELDS,
          *SGLANG_EXTENSIONS, *_IGNORED}
_KNOWN_COMPLETIONS = (_KNOWN - {"messages", "tools", "tool_choice", "parallel_tool_calls",
                                "response_format", "max_completion_tokens", "top_logprobs",
                                "modalities", "chat_template_kwargs", *REASONING_FIELDS}) | {
    "prompt"}
_ROLES = {"system", "user", "assistant", "tool", "developer"}
def _content(message: Mapping[str, Any], i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        # an assistant's refusal parts are its text as the model wrote it (OpenAI takes them)
        kinds = {"text": "text", **({"refusal": "refusal"}
                                    if message.get("role") == "assistant" else {})}
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            field = kinds.get(kind) if isinstance(kind, str) else None
            if field is None or not isinstance(part.get(field), str):
                raise BadRequest(f"messages[{i}].content[{j}]: only text parts are supported",
                                 "messages")
            parts.append(part[field])
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
        if not isinstance(role, str) or role not in _ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}",
                             "messages")
        msg = common_pb2.Message(role="system" if role == "developer" else role,
                                 content=_content(m, i), tool_calls=tool_calls_of(m, i))
        for name in ("name", "tool_call_id"):
            value = m.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise BadRequest(f"messages[{i}].{name} must be a string", "messages")
                setattr(msg, name, value)
        if role == "tool" and not msg.tool_call_id:  # OpenAI's schema requires it
            raise BadRequest(f"messages[{i}].tool_call_id is required: the id of the tool call "
                             "the message answers", "messages")
        out.append(msg)
    return out


def _logprobs(body: Mapping[str, Any], call: common_pb2.CallSpec, *, count: bool = False) -> None:
    """`logprobs`: true or false (chat), or a count of top logprobs (`count`: completions)."""
    if count:
        n = number(body, "logprobs", int)
        if n is not None and not 0 <= n <= 20:
            raise BadRequest("logprobs must be an integer from 0 to 20", "logprobs")
        call.logprobs, call.top_logprobs = n is not None, n or 0  # 0: the sampled tokens only
        return
    raw = body.get("logprobs")
    if raw is not None and not isinstance(raw, bool):
        raise BadRequest("logprobs must be true or false", "logprobs")
    call.logprobs = bool(raw)
    top = number(body, "top_logprobs", int)
    if top is not None:
        if not 0 <= top <= 20:
            raise BadRequest("top_logprobs must be an integer from 0 to 20", "top_logprobs")
        call.top_logprobs = top


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
    expected = number(ext, "expected_output_tokens", int)
    if expected is not None:
        call.hints.expected_output_tokens = min(max(0, expected), UINT32_MAX)  # a hint


def choices(body: Mapping[str, Any]) -> int:
    """`n`: how many independent answers (1 to 8)."""
    n = number(body, "n", int)
    if n is None:
        return 1
    if not 1 <= n <= 8:
        raise BadRequest("n must be an integer from 1 to 8", "n")
    return int(n)


# An unsupported field given as null or as the value that asks for nothing (`echo: false`,
# `best_of: 1`, `functions: []` ...) changes no answer: taken, as clients that send every
# field send it. As JSON compares them: `echo: 0` is not `false`, `best_of: 1.0` is `1`.
NEUTRAL: dict[str, object] = {"echo": False, "best_of": 1, "functions": [],
                              "function_call": "none", "suffix": ""}


def _neutral(name: str, value: object) -> bool:
    if value is None:
        return True
    if name not in NEUTRAL:
        return False
    neutral = NEUTRAL[name]
    return isinstance(value, bool) == isinstance(neutral, bool) and value == neutral


def _check_fields(body: Any, known: set[str]) -> None:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if "cache_salt" in body:
        raise BadRequest("cache_salt is derived by the gateway from your API key; clients "
                         "cannot choose it", "cache_salt")
    unsupported = sorted(name for name in set(body) & UNSUPPORTED_FIELDS
                         if not _neutral(name, body[name]))
    if unsupported:
        raise BadRequest(f"not supported by this gateway: {', '.join(unsupported)}", unsupported[0])
    unknown = sorted(set(body) - known - UNSUPPORTED_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    if not isinstance(body.get("model", ""), str):
        raise BadRequest("model must be a string", "model")


def call_from_openai(body: Any, cache_header: str | None) -> common_pb2.CallSpec:
    """A chat-completions request body (parsed JSON) as a CallSpec; raises BadRequest."""
    _check_fields(body, _KNOWN)
    _check_ignored(body)
    if body.get("modalities") not in (None, ["text"]):
        raise BadRequest('modalities: only ["text"] is served here', "modalities")
    call = common_pb2.CallSpec(model=body.get("model", ""), messages=_messages(body),
                               sampling=sampling(body), tools=tools_of(body),
                               tool_choice=tool_choice_of(body),
                               response_format=response_format_of(body))
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, dict):
            raise BadRequest("chat_template_kwargs must be an object (the chat template's "
                             "variables)", "chat_template_kwargs")
        call.chat_template_kwargs = json.dumps(kwargs, ensure_ascii=False)
    _reasoning(body, call)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise BadRequest("parallel_tool_calls must be true or false", "parallel_tool_calls")
        call.parallel_tool_calls = parallel
    _logprobs(body, call)
    _extension(call, body.get("ostinato"))
    _cache_header(call, cache_header)
    return call


def _check_ignored(body: Mapping[str, Any]) -> None:
    """The fields taken without effect are still OpenAI's: refused when they are not."""
    check_metadata(body.get("metadata"))
    check_service_tier(body.get("service_tier"))
    if body.get("store") not in (None, True, False):
        raise BadRequest("store must be true or false", "store")


MAX_PROMPTS = 20  # a /v1/completions request's prompts (LangChain's OpenAI batches 20)


def completion_prompts(body: Mapping[str, Any]) -> list[str]:
    """/v1/completions' `prompt`: a string, or an array of 1 to MAX_PROMPTS of them (what
    LangChain's OpenAI class sends); token-id prompts are refused."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if isinstance(prompts, list) and 1 <= len(prompts) <= MAX_PROMPTS and all(
            isinstance(p, str) and p for p in prompts):
        return prompts
    tokens = isinstance(prompts, list) and prompts and all(
        isinstance(p, int | list) for p in prompts)
    raise BadRequest("prompt must be a non-empty string or an array of 1 to "
                     f"{MAX_PROMPTS} of them" + (" (token-id prompts are not supported)"
                                                 if tokens else ""), "prompt")


def call_from_completion(body: Any, cache_header: str | None) -> common_pb2.CallSpec:
    """A (legacy) completions request body: a raw prompt, no chat template (the first
    prompt's call: `completion_prompts` lists them all)."""
    _check_fields(body, _KNOWN_COMPLETIONS)
    _check_ignored(body)
    prompt = completion_prompts(body)[0]
    call = common_pb2.CallSpec(model=body.get("model", ""), prompt=prompt, sampling=sampling(body))
    _logprobs(body, call, count=True)
    _extension(call, body.get("ostinato"))
    _cache_header(call, cache_header)
    return call


def _cache_header(call: common_pb2.CallSpec, cache_header: str | None) -> None:
    if cache_header is not None and cache_header.strip():
        try:
            call.cache.CopyFrom(header_to_proto(cache_header))
        except InvalidCachePolicy as exc:
            raise BadRequest(str(exc), "X-Ostinato-Cache") from exc


def _reasoning(body: Mapping[str, Any], call: common_pb2.CallSpec) -> None:
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:  # (a number or a bool is not in it either)
            raise BadRequest(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}",
                             "reasoning_effort")
        call.reasoning_effort = effort
    for name in ("separate_reasoning", "stream_reasoning"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise BadRequest(f"{name} must be true or false", name)
    call.reasoning_in_text = body.get("separate_reasoning") is False


def streams_reasoning(body: Mapping[str, Any]) -> bool:
    """SGLang's stream_reasoning: false holds a streamed answer's thinking back and sends it
    whole, with the answer's first piece (or its end)."""
    return body.get("stream_reasoning") is not False


def wants_stream(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage) of a request body."""
    try:
        stream = optional(body.get("stream"), bool, False)
    except ValueError as exc:
        raise BadRequest("stream must be true or false", "stream") from exc
    try:
        options = optional(body.get("stream_options"), dict, {})
        usage = optional(options.get("include_usage"), bool, False)
        optional(options.get("include_obfuscation"), bool, False)  # taken: nothing to pad
    except ValueError as exc:
        raise BadRequest("stream_options must be an object, its include_usage and "
                         "include_obfuscation true or false", "stream_options") from exc
    unknown = sorted(set(options) - {"include_usage", "include_obfuscation"})
    if unknown:
        raise BadRequest(f"stream_options: unknown field(s): {', '.join(unknown)}",
                         "stream_options")
    if body.get("stream_options") is not None and not stream:  # (as OpenAI and vLLM refuse it)
        raise BadRequest("stream_options is only allowed when stream is true", "stream_options")
    return stream, usage
