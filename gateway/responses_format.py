"""OpenAI Responses API requests (POST /v1/responses) -> the chat-completions request the
gateway already serves (gateway/openai_format.py), so both run one call path.

What maps: `input` (a string, or items: messages with text parts, function_call,
function_call_output; reasoning items from another model are dropped), `instructions` (a
system message first), function `tools`, `tool_choice`, `parallel_tool_calls`,
`text.format` (text, json_object, json_schema), `max_output_tokens`, `temperature`, `top_p`,
`top_logprobs` (with include "message.output_text.logprobs"), `stream`, `metadata` (echoed),
`reasoning` (its effort as the chat API's reasoning_effort), SGLang's sampling extensions
as the chat API takes them (`top_k`, `min_p`, `repetition_penalty`, `min_tokens`,
`ignore_eos`),
and the `ostinato` extension. `previous_response_id` continues a stored response: the
caller (gateway/responses_api.py) reads its context and output (cache/stored_responses.py)
and they come first, after `instructions` (which, as OpenAI's, are not carried over).
`conversation` (OpenAI's Conversations API), hosted tools and background runs are refused.
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.openai_fields import check_metadata, check_service_tier
from gateway.openai_format import BadRequest
from gateway.openai_sampling import SGLANG_EXTENSIONS
from gateway.prompts import REASONING_EFFORTS

# accepted and without effect here: nothing truncated, no service tiers, no moderation;
# max_tool_calls bounds built-in (hosted) tools' calls, and there are none
IGNORED = {"user", "safety_identifier", "prompt_cache_key", "service_tier",
           "prompt_cache_retention", "prompt_cache_options", "metadata", "stream_options",
           "max_tool_calls", "moderation"}
UNSUPPORTED = {
    "prompt": "stored prompt templates are not supported",
    "background": "background responses are not supported",
    "context_management": "context management is not supported",
    "background_options": "background responses are not supported",
    "image": "image generation is not supported",
    "access_programs": "access programs are not supported",
}
_KNOWN = {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
          "text", "max_output_tokens", "temperature", "top_p", "top_logprobs", "stream",
          "include", "truncation", "reasoning", "ostinato", "store", "previous_response_id",
          "conversation", *SGLANG_EXTENSIONS,
          *IGNORED, *UNSUPPORTED}
PRIOR = "previous_response_id"  # where the items of earlier turns came from
INCLUDES = {"message.output_text.logprobs", "reasoning.encrypted_content"}
SUMMARIES = ("auto", "concise", "detailed")  # reasoning.summary: taken, none written
_ROLES = {"user", "system", "developer", "assistant"}
_TEXT_PARTS = {"input_text", "output_text", "text", "refusal"}
# a function tool's fields without effect here: deferred loading is an optimization of
# OpenAI's tool search, callers other than the model do not exist, an output schema
# describes what the client's function returns
TOOL_IGNORED = {"defer_loading", "allowed_callers", "output_schema"}


@dataclass
class Sources:
    """Where each chat message (and each of its tool calls) came from in the Responses
    request, so that an error names the field the client sent."""

    messages: list[str] = field(default_factory=list)
    tool_calls: list[list[str]] = field(default_factory=list)

    def add(self, where: str) -> None:
        self.messages.append(where)
        self.tool_calls.append([])

    def rename(self, text: str) -> str:
        """`text` (an error message or a param) with chat paths as Responses paths."""
        def call(m: re.Match[str]) -> str:
            i, j = int(m[1]), int(m[2])
            calls = self.tool_calls[i] if i < len(self.tool_calls) else []
            return calls[j] if j < len(calls) else m[0]

        def message(m: re.Match[str]) -> str:
            i = int(m[1])
            return self.messages[i] if i < len(self.messages) else m[0]

        text = re.sub(r"messages\[(\d+)\]\.tool_calls\[(\d+)\](\.function)?", call, text)
        text = re.sub(r"messages\[(\d+)\]", message, text)
        return re.sub(r"tools\[(\d+)\]\.function\.", r"tools[\1].", text)


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or text parts (input_text, output_text, refusal)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or an array of text parts", "input")
    out = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str) \
                or part["type"] not in _TEXT_PARTS:
            kind = part.get("type") if isinstance(part, dict) else None
            raise BadRequest(f"{where}.content[{j}]: only text parts are supported (got "
                             f"{kind!r})", "input")
        text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
        if not isinstance(text, str):
            raise BadRequest(f"{where}.content[{j}] needs a string text", "input")
        out.append(text)
    return "".join(out)


def _string(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{where}.{name} must be a string", "input")
    return value


def input_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` (checked by `translate`) as the prompt used it, to be stored:
    the fields each item type is read for, a message's text parts joined, another model's
    reasoning dropped (no text the prompt's limits did not count is kept)."""
    raw = body["input"]
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    out: list[dict[str, Any]] = []
    for item in raw:
        kind = item.get("type", "message")
        if kind == "message":
            out.append({"type": "message", "role": item["role"],
                        "content": _text(item.get("content"), "input")})
        elif kind == "function_call":
            out.append({k: item[k] for k in ("type", "call_id", "name", "arguments")})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"type": kind, "call_id": item["call_id"],
                        "output": output if isinstance(output, str) else _text(output, "input")})
    return out


def checked_items(raw: Any, name: str, limit: int, max_chars: int) -> list[dict[str, Any]]:
    """Items given to keep (a conversation's), checked as an input's are and kept as a
    prompt would use them (`input_items`); BadRequest naming `name`: not an array of at
    most `limit`, an item the Responses API does not take, more than `max_chars` of text."""
    if not isinstance(raw, list) or len(raw) > limit:
        raise BadRequest(f"{name} must be an array of at most {limit} items", name)
    try:
        _add_items(raw, lambda i: f"{name}[{i}]", [], Sources())
    except BadRequest as exc:
        raise BadRequest(str(exc), name) from None
    items = input_items({"input": raw})
    chars = sum(len(item.get(k) or "") for item in items
                for k in ("content", "output", "arguments"))
    if chars > max_chars:
        raise BadRequest(f"{name}: {chars} characters of text; at most {max_chars}", name)
    try:  # refused now, as an input's is when sent: kept, it failed every later request
        json.dumps(items, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{name}: a string is not valid Unicode (a lone surrogate escape)",
                         name) from None
    return items


def _messages(body: Mapping[str, Any], sources: Sources,
              prior: Sequence[Any]) -> list[dict[str, Any]]:
    """`instructions`, the `prior` turns' items and `input` as chat messages."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise BadRequest("instructions must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
        sources.add("instructions")
    came_from = "conversation" if body.get("conversation") else PRIOR  # (HTTP review F5)
    _add_items(prior, lambda i: came_from, messages, sources)
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
        sources.add("input")
    elif isinstance(raw, list) and raw:
        _add_items(raw, lambda i: f"input[{i}]", messages, sources)
    else:
        raise BadRequest("input must be a string or a non-empty array of items", "input")
    if not messages:
        raise BadRequest("input holds no message", "input")
    return messages


def _add_items(items: Sequence[Any], where_of: Callable[[int], str],
               messages: list[dict[str, Any]], sources: Sources) -> None:
    """Input items as chat messages. Function calls in a row join the assistant message
    before them, as a chat model wrote them."""
    for i, item in enumerate(items):
        where = where_of(i)
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if not isinstance(role, str) or role not in _ROLES:
                raise BadRequest(f"{where}.role must be one of {', '.join(sorted(_ROLES))}",
                                 "input")
            messages.append({"role": role, "content": _text(item.get("content"), where)})
            sources.add(where)
        elif kind == "function_call":
            call = {"id": _string(item, "call_id", where), "type": "function",
                    "function": {"name": _string(item, "name", where),
                                 "arguments": _string(item, "arguments", where)}}
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                messages.append(last)
                sources.add(where)
            last.setdefault("tool_calls", []).append(call)
            sources.tool_calls[-1].append(where)
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", where),
                             "content": output if isinstance(output, str)
                             else _text(output, where)})
            sources.add(where)
        elif kind == "reasoning":
            continue  # another model's reasoning: this one is given none
        else:
            raise BadRequest(f"{where}: items of type {kind!r} are not supported (message, "
                             "function_call, function_call_output)", "input")


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    raw = body.get("tools")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("tools must be an array", "tools")
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise BadRequest(f"tools[{i}]: only function tools are supported (got {kind!r})",
                             "tools")
        unknown = sorted(set(tool) - {"type", "name", "description", "parameters", "strict",
                                      *TOOL_IGNORED})
        if unknown:
            raise BadRequest(f"tools[{i}]: unknown field(s) {', '.join(unknown)}", "tools")
        callers = tool.get("allowed_callers")
        if callers is not None and (not isinstance(callers, list) or "direct" not in callers):
            raise BadRequest(f"tools[{i}].allowed_callers must let the model call it "
                             '("direct")', "tools")
        out.append({"type": "function", "function": {
            k: v for k, v in tool.items() if k != "type" and k not in TOOL_IGNORED}})
    return out


def _tool_choice(body: Mapping[str, Any]) -> Any:
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and set(choice) <= {
            "type", "name"}:
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools" and set(choice) <= {
            "type", "mode", "tools"} and isinstance(choice.get("tools"), list):
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice.get("mode"), "tools": [
            {"type": t.get("type"), "function": {"name": t.get("name")}} if isinstance(t, dict)
            else t for t in choice["tools"]]}}
    raise BadRequest('tool_choice must be "auto", "none", "required", {"type": "function", '
                     '"name": ...} or {"type": "allowed_tools", "mode": ..., "tools": [...]}',
                     "tool_choice")


def _response_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict) or set(text) - {"format", "verbosity"}:
        raise BadRequest("text must be an object with a format", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise BadRequest("text.format must be an object", "text")
    if fmt.get("type") == "json_schema":
        unknown = sorted(set(fmt) - {"type", "name", "schema", "strict", "description"})
        if unknown:
            raise BadRequest(f"text.format: unknown field(s) {', '.join(unknown)}", "text")
        return {"type": "json_schema",
                "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
    if fmt.get("type") in ("text", "json_object") and set(fmt) == {"type"}:
        return {"type": fmt["type"]}
    raise BadRequest('text.format must be {"type": "text"}, {"type": "json_object"} or '
                     '{"type": "json_schema", "name": ..., "schema": {...}}', "text")


def _checked(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    for name, why in UNSUPPORTED.items():
        if body.get(name) is not None and body.get(name) is not False:  # not 0, 0.0
            raise BadRequest(f"{name}: {why}", name)
    include = body.get("include")
    if include is not None and (not isinstance(include, list) or not all(
            isinstance(x, str) for x in include)):
        raise BadRequest("include must be an array of strings", "include")
    unknown = sorted(set(include or ()) - INCLUDES)
    if unknown:
        raise BadRequest(f"include: not supported here: {', '.join(unknown)}", "include")
    if body.get("truncation") not in (None, "disabled", "auto"):
        raise BadRequest('truncation must be "disabled" or "auto"', "truncation")
    check_reasoning(body.get("reasoning"))
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise BadRequest("stream must be true or false", "stream")
    if body.get("store") is not None and not isinstance(body["store"], bool):
        raise BadRequest("store must be true or false", "store")
    previous = body.get(PRIOR)
    if previous is not None and not isinstance(previous, str):
        raise BadRequest(f"{PRIOR} must be a string", PRIOR)
    if conversation_id(body) is not None and previous is not None:
        raise BadRequest(f"conversation and {PRIOR} cannot both be given", "conversation")
    check_metadata(body.get("metadata"))
    check_service_tier(body.get("service_tier"))
    return body


def conversation_id(body: Mapping[str, Any]) -> str | None:
    """The conversation a request runs in (`conversation`: its id, or {"id": ...}); None
    when it names none; BadRequest for another shape."""
    conversation = body.get("conversation")
    if isinstance(conversation, dict) and set(conversation) == {"id"}:
        conversation = conversation["id"]
    if conversation is not None and not isinstance(conversation, str):
        raise BadRequest('conversation must be a conversation id or {"id": ...}',
                         "conversation")
    return conversation


def check_reasoning(reasoning: Any) -> None:
    """OpenAI's reasoning settings: `effort` (gateway/prompts.py REASONING_EFFORTS) goes to
    the chat template as the chat API's reasoning_effort; `summary` (and the deprecated
    `generate_summary`) may be asked for, but no summary is written: the thinking itself is
    the reasoning item's content."""
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise BadRequest("reasoning must be an object", "reasoning")
    unknown = sorted(set(reasoning) - {"effort", "summary", "generate_summary"})
    if unknown:
        raise BadRequest(f"reasoning: unknown field(s): {', '.join(unknown)}", "reasoning")
    if reasoning.get("effort") not in (None, *REASONING_EFFORTS):
        raise BadRequest(f"reasoning.effort must be one of {', '.join(REASONING_EFFORTS)}",
                         "reasoning")
    for name in ("summary", "generate_summary"):
        if reasoning.get(name) not in (None, *SUMMARIES):
            raise BadRequest(f"reasoning.{name} must be one of {', '.join(SUMMARIES)}",
                             "reasoning")


def translate(body: Any, prior: Sequence[Any] = ()) -> tuple[dict[str, Any], Sources]:
    """A Responses request body (parsed JSON) as the chat-completions body it asks for, and
    where each of its messages came from; raises BadRequest naming the Responses field.
    `prior`: the items of the stored turns `previous_response_id` continues."""
    body = _checked(body)
    sources = Sources()
    chat: dict[str, Any] = {"messages": _messages(body, sources, prior)}
    for name in ("model", "temperature", "top_p", "parallel_tool_calls", "ostinato",
                 *SGLANG_EXTENSIONS):
        if name in body:  # the chat path's checks apply (null: left out)
            chat[name] = body[name]
    if "max_output_tokens" in body:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if (body.get("reasoning") or {}).get("effort") is not None:
        chat["reasoning_effort"] = body["reasoning"]["effort"]
    tools, choice, fmt = _tools(body), _tool_choice(body), _response_format(body)
    for name, value in (("tools", tools), ("tool_choice", choice), ("response_format", fmt)):
        if value is not None:
            chat[name] = value
    top = body.get("top_logprobs")
    if top is not None or "message.output_text.logprobs" in (body.get("include") or ()):
        chat["logprobs"] = True
        if top is not None:
            chat["top_logprobs"] = top
    return chat, sources


def chat_from_responses(body: Any) -> dict[str, Any]:
    """The chat-completions body a Responses request asks for (translate's first half)."""
    return translate(body)[0]
