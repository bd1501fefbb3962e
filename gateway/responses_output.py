"""Ostinato results -> OpenAI Responses API JSON: the response object and its streamed
events (response.created ... response.completed). Pure: no I/O, no aiohttp.

A response's output is a reasoning item (a reasoning model's thinking, with
gateway.reasoning_parser), a message item (when the answer has text), then one
function_call item per tool call. A call cut at max_output_tokens is "incomplete" with
reason max_output_tokens, as OpenAI reports it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.openai_response import OPENAI_ERROR_CODES, logprobs_json
from ostinato.v1 import common_pb2


def _logprobs(result: common_pb2.CallResult) -> list[dict[str, Any]]:
    """The answer's tokens with their logprobs, as chat completions list them."""
    return (logprobs_json(result) or {"content": []})["content"]


def usage_json(usage: common_pb2.Usage) -> dict[str, Any]:
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                     "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def message_item(item_id: str, text: str, status: str = "completed",
                 logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A message item; "in_progress" has no content yet, "incomplete" is a text cut short
    (at max_output_tokens, or by a failure)."""
    content = [] if status == "in_progress" else [text_part(text, logprobs)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": content}


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    """OpenAI's reasoning item, the thinking as its reasoning_text content (no summary)."""
    content = [] if status == "in_progress" else [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content,
            "status": status}


def function_call_item(call: common_pb2.ToolCall, status: str = "completed") -> dict[str, Any]:
    return {"id": f"fc_{uuid.uuid4().hex}", "type": "function_call", "call_id": call.id,
            "name": call.name, "arguments": call.arguments if status == "completed" else "",
            "status": status}


@dataclass
class ResponseShell:
    """What every rendering of one response shares: its id, the request's echoed settings."""

    model: str
    created_at: int
    request: Mapping[str, Any]
    store: bool = False  # kept for previous_response_id and GET /v1/responses/<id>
    conversation: str | None = None  # the conversation it is added to
    id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")

    def json(self, status: str, output: list[dict[str, Any]],
             result: common_pb2.CallResult | None = None,
             extension: dict[str, Any] | None = None,
             error: dict[str, Any] | None = None) -> dict[str, Any]:
        req = self.request
        incomplete = result is not None and result.finish_reason == "length"
        out: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": "incomplete" if incomplete and status == "completed" else status,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": req.get("instructions"), "model": self.model, "output": output,
            "parallel_tool_calls": _or(req.get("parallel_tool_calls"), True),
            "tool_choice": _or(req.get("tool_choice"), "auto"),
            "tools": _or(req.get("tools"), []),
            "temperature": req.get("temperature"), "top_p": req.get("top_p"),
            "max_output_tokens": req.get("max_output_tokens"),
            "previous_response_id": req.get("previous_response_id"), "store": self.store,
            "conversation": {"id": self.conversation} if self.conversation else None,
            "truncation": _or(req.get("truncation"), "disabled"),
            "top_logprobs": req.get("top_logprobs"),
            "user": req.get("user"),
            "service_tier": _or(req.get("service_tier"), "default"),
            "text": req.get("text") or {"format": {"type": "text"}},
            "reasoning": {"effort": (req.get("reasoning") or {}).get("effort"),
                          "summary": (req.get("reasoning") or {}).get("summary")},
            "metadata": req.get("metadata") or {},
            "usage": usage_json(result.usage) if result is not None else None,
        }
        if extension is not None:
            out["ostinato"] = extension
        return out


def _or(value: Any, default: Any) -> Any:
    """A request's setting as echoed: null (or left out) is the default."""
    return default if value is None else value


def _status(result: common_pb2.CallResult) -> str:
    """A finished call's message item: incomplete when cut at max_output_tokens."""
    return "incomplete" if result.finish_reason == "length" else "completed"


# gRPC status of a failure after the stream began -> OpenAI's ResponseError code
_ERROR_CODES = {**{c.name: v for c, v in OPENAI_ERROR_CODES.items()},
                "INVALID_ARGUMENT": "invalid_prompt"}


def error_code(grpc_code: str) -> str:
    return _ERROR_CODES.get(grpc_code, "server_error")


def output_json(result: common_pb2.CallResult) -> list[dict[str, Any]]:
    """The output items of a finished call."""
    items = []
    if result.reasoning_content:
        items.append(reasoning_item(f"rs_{uuid.uuid4().hex}", result.reasoning_content))
    if result.text or not result.tool_calls:
        items.append(message_item(f"msg_{uuid.uuid4().hex}", result.text, _status(result),
                                  _logprobs(result)))
    items.extend(function_call_item(c) for c in result.tool_calls)
    return items


class ResponseEvents:
    """One streamed response's server-sent events, numbered in order (sequence_number)."""

    def __init__(self, shell: ResponseShell) -> None:
        self._shell = shell
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._message: str | None = None  # the open message item's id
        self._text: list[str] = []
        self._reasoning: str | None = None  # the open reasoning item's id
        self._thinking: list[str] = []
        self.final: dict[str, Any] | None = None  # the finished response object
        self._void = 0  # the items before this one are a restarted call's: void

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return f"event: {kind}\ndata: ".encode() + json.dumps(data).encode() + b"\n\n"

    def started(self) -> bytes:
        response = self._shell.json("in_progress", [])
        return (self._event("response.created", response=response)
                + self._event("response.in_progress", response=response))

    def thinking(self, delta: str) -> bytes:
        """A piece of the model's thinking (opening its reasoning item first)."""
        out = b""
        if self._reasoning is None:
            self._reasoning = f"rs_{uuid.uuid4().hex}"
            out += self._event("response.output_item.added", output_index=len(self._output),
                               item=reasoning_item(self._reasoning, "", "in_progress"))
        self._thinking.append(delta)
        return out + self._event("response.reasoning_text.delta", item_id=self._reasoning,
                                 output_index=len(self._output), content_index=0, delta=delta)

    def _thought(self, status: str = "completed") -> bytes:
        """The reasoning item closed, if one is open (the answer begins, or the call ends)."""
        if self._reasoning is None:
            return b""
        text, index = "".join(self._thinking), len(self._output)
        item = reasoning_item(self._reasoning, text, status)
        out = b""
        if status == "completed":
            out += self._event("response.reasoning_text.done", item_id=self._reasoning,
                               output_index=index, content_index=0, text=text)
        out += self._event("response.output_item.done", output_index=index, item=item)
        self._output.append(item)
        self._reasoning = None
        self._thinking.clear()
        return out

    def text(self, delta: str) -> bytes:
        """A piece of the answer's text (closing the thinking, opening its message item
        first)."""
        out = self._thought()
        if self._message is None:
            self._message = f"msg_{uuid.uuid4().hex}"
            out += self._event("response.output_item.added", output_index=len(self._output),
                               item=message_item(self._message, "", "in_progress"))
            out += self._event("response.content_part.added", item_id=self._message,
                               output_index=len(self._output), content_index=0,
                               part=text_part(""))
        self._text.append(delta)
        return out + self._event("response.output_text.delta", item_id=self._message,
                                 output_index=len(self._output), content_index=0,
                                 delta=delta, logprobs=[])

    def restarted(self) -> bytes:
        """The call starts over elsewhere: what came before is void. Its open items close
        incomplete (empty: the text the client got before is void); every item so far
        keeps the output_index the client heard, and the new attempt's items follow. The
        finished response (and what is stored of it) holds the new attempt's items only,
        as a response answered whole does."""
        out = b""
        if self._reasoning is not None:
            self._thinking.clear()  # (closed empty: what the client got of it is void)
            out += self._thought("incomplete")
        if self._message is not None:
            index, item = len(self._output), message_item(self._message, "", "incomplete")
            out += self._event("response.output_item.done", output_index=index, item=item)
            self._output.append(item)
            self._message = None
        self._text.clear()
        self._void = len(self._output)
        return out

    def finished(self, result: common_pb2.CallResult, extension: dict[str, Any]) -> bytes:
        """The message item closed, then the tool calls; `final` is the finished response
        (`completed` is its event)."""
        out = self._thought()
        if self._message is None and (result.text or not result.tool_calls):
            out += self.text("")
        if self._message is not None:
            text, logprobs = "".join(self._text), _logprobs(result)
            index = len(self._output)
            out += self._event("response.output_text.done", item_id=self._message,
                               output_index=index, content_index=0, text=text,
                               logprobs=logprobs)
            out += self._event("response.content_part.done", item_id=self._message,
                               output_index=index, content_index=0,
                               part=text_part(text, logprobs))
            item = message_item(self._message, text, _status(result), logprobs)
            out += self._event("response.output_item.done", output_index=index, item=item)
            self._output.append(item)
        for call in result.tool_calls:
            index, item = len(self._output), function_call_item(call)
            out += self._event("response.output_item.added", output_index=index,
                               item={**item, "arguments": "", "status": "in_progress"})
            out += self._event("response.function_call_arguments.delta", item_id=item["id"],
                               output_index=index, delta=call.arguments)
            out += self._event("response.function_call_arguments.done", item_id=item["id"],
                               output_index=index, name=call.name, arguments=call.arguments)
            out += self._event("response.output_item.done", output_index=index, item=item)
            self._output.append(item)
        self.final = self._shell.json("completed", self._output[self._void:], result,
                                      extension)
        return out

    def completed(self) -> bytes:
        """The last event: response.completed (or .incomplete) with the finished response."""
        response = self.final
        assert response is not None, "finished() first"
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return self._event(kind, response=response)

    def failed(self, grpc_code: str, message: str) -> bytes:
        """The call failed after the stream began: the text streamed so far closed as an
        incomplete message (its thinking as an incomplete reasoning item), then
        response.failed with the error (OpenAI's code for the gRPC status `grpc_code`)."""
        out = self._thought("incomplete")
        if self._message is not None:
            index, text = len(self._output), "".join(self._text)
            item = message_item(self._message, text, "incomplete")
            out += self._event("response.output_item.done", output_index=index, item=item)
            self._output.append(item)
            self._message = None
        return out + self._event("response.failed", response=self._shell.json(
            "failed", self._output[self._void:],
            error={"code": error_code(grpc_code), "message": message}))
