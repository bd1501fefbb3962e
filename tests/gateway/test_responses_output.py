"""Responses API output: the response object and the streamed events of an answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.responses_output import ResponseEvents, ResponseShell, output_json
from ostinato.v1 import common_pb2

CALL = common_pb2.ToolCall(id="call_1", name="weather", arguments='{"city": "Oslo"}')


def _result(text: str = "", finish: str = "stop",
            calls: tuple[common_pb2.ToolCall, ...] = ()) -> common_pb2.CallResult:
    return common_pb2.CallResult(text=text, finish_reason=finish, tool_calls=calls,
                                 usage=common_pb2.Usage(prompt_tokens=5, completion_tokens=3,
                                                        cached_tokens=2))


def _events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            kind, data = block.split("\n")
            event = json.loads(data.removeprefix("data: "))
            assert kind == f"event: {event['type']}"
            out.append(event)
    return out


@pytest.mark.parametrize(("result", "types"), [
    (_result("hi"), ["message"]),
    (_result("", "tool_calls", (CALL,)), ["function_call"]),
    (_result("let me look", "tool_calls", (CALL, CALL)), ["message", "function_call",
                                                          "function_call"]),
    (_result(""), ["message"]),  # an empty answer is still a message
    (common_pb2.CallResult(text="4", reasoning_content="2+2", finish_reason="stop"),
     ["reasoning", "message"]),
    (common_pb2.CallResult(reasoning_content="look it up", finish_reason="tool_calls",
                           tool_calls=[CALL]), ["reasoning", "function_call"]),
])
def test_output_items(result: common_pb2.CallResult, types: list[str]) -> None:
    items = output_json(result)
    assert [i["type"] for i in items] == types
    for item in items:
        if item["type"] == "function_call":
            assert (item["call_id"], item["name"], item["arguments"]) == (
                CALL.id, CALL.name, CALL.arguments)


def test_status_usage_and_echoed_settings() -> None:
    shell = ResponseShell("m", 1, {"instructions": "sys", "metadata": {"k": "v"}})
    done = shell.json("completed", [], _result("x"))
    assert (done["status"], done["incomplete_details"]) == ("completed", None)
    assert done["usage"] == {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 2,
                                                                         "cache_write_tokens": 0},
                             "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": 8}
    assert (done["instructions"], done["metadata"], done["store"]) == ("sys", {"k": "v"}, False)
    cut = shell.json("completed", [], _result("x", "length"))
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_streamed_answer_with_a_tool_call() -> None:
    events = ResponseEvents(ResponseShell("m", 1, {}))
    raw = events.started() + events.text("Let ") + events.text("me") + events.finished(
        _result("Let me", "tool_calls", (CALL,)), {"call_id": "c"}) + events.completed()
    out = _events(raw)
    assert [e["type"] for e in out] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert out[6]["text"] == "Let me" and out[11]["arguments"] == CALL.arguments
    final = out[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["id"] == out[2]["item"]["id"] == out[4]["item_id"]
    assert final["ostinato"] == {"call_id": "c"}


def test_a_streamed_answer_thinks_first() -> None:
    events = ResponseEvents(ResponseShell("m", 1, {}))
    result = common_pb2.CallResult(text="Four.", reasoning_content="Two and two.",
                                   finish_reason="stop")
    raw = events.thinking("Two and ") + events.thinking("two.") + events.text("Four.") \
        + events.finished(result, {}) + events.completed()
    out = _events(raw)
    assert [e["type"] for e in out] == [
        "response.output_item.added", "response.reasoning_text.delta",
        "response.reasoning_text.delta", "response.reasoning_text.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert out[0]["item"]["type"] == "reasoning" and out[0]["output_index"] == 0
    assert out[3]["text"] == "Two and two." and out[5]["output_index"] == 1
    final = out[-1]["response"]["output"]
    assert final[0] == {"id": out[0]["item"]["id"], "type": "reasoning", "summary": [],
                        "content": [{"type": "reasoning_text", "text": "Two and two."}],
                        "status": "completed"}
    assert final[1]["content"][0]["text"] == "Four."
    cut = ResponseEvents(ResponseShell("m", 1, {}))
    cut.thinking("half a tho")  # the call fails while thinking: an incomplete reasoning item
    failed = _events(cut.failed("UNAVAILABLE", "gone"))
    assert failed[0]["item"]["status"] == "incomplete" and failed[-1]["type"] == "response.failed"
    assert failed[-1]["response"]["output"][0]["content"][0]["text"] == "half a tho"


def test_a_restart_voids_the_text_before_it_and_a_failure_ends_the_stream() -> None:
    events = ResponseEvents(ResponseShell("m", 1, {}))
    events.text("old")
    events.restarted()
    events.text("new")
    out = _events(events.finished(_result("new", "length"), {}) + events.completed())
    assert out[0]["text"] == "new" and out[-1]["type"] == "response.incomplete"
    failed = _events(ResponseEvents(ResponseShell("m", 1, {})).failed("UNAVAILABLE", "gone"))
    assert failed[0]["type"] == "response.failed"
    assert failed[0]["response"]["error"] == {"code": "server_error", "message": "gone"}


def test_a_restart_after_the_thinking_keeps_every_output_index() -> None:
    """The thinking closed, the answer begun, then a restart whose attempt thinks again:
    every item keeps the index the client was told, the void answer's message closes empty
    and incomplete, and the finished response holds the new attempt's items only."""
    events = ResponseEvents(ResponseShell("m", 1, {}))
    raw = events.thinking("old thought") + events.text("old answer")
    raw += events.restarted()
    raw += events.thinking("new thought") + events.text("new answer")
    out = _events(raw + events.finished(_result("new answer"), {}) + events.completed())
    added = [(e["output_index"], e["item"]["type"]) for e in out
             if e["type"] == "response.output_item.added"]
    done = [(e["output_index"], e["item"]["type"], e["item"]["status"]) for e in out
            if e["type"] == "response.output_item.done"]
    assert added == [(0, "reasoning"), (1, "message"), (2, "reasoning"), (3, "message")]
    assert done == [(0, "reasoning", "completed"), (1, "message", "incomplete"),
                    (2, "reasoning", "completed"), (3, "message", "completed")]
    void = next(e["item"] for e in out if e["type"] == "response.output_item.done"
                and e["output_index"] == 1)
    assert void["content"][0]["text"] == ""
    final = out[-1]["response"]["output"]
    assert [(i["type"], i["status"]) for i in final] == [("reasoning", "completed"),
                                                        ("message", "completed")]
    assert final[0]["content"][0]["text"] == "new thought"
    assert final[1]["content"][0]["text"] == "new answer"


@pytest.mark.parametrize("before", ["thinking", "text", "both", "nothing"])
@pytest.mark.parametrize("after", ["thinking", "text", "calls"])
def test_the_finished_response_after_a_restart_is_the_new_attempts(before: str,
                                                                  after: str) -> None:
    """Whatever was open or closed at the restart, the finished response holds what a
    response answered whole by the new attempt holds (output_json), ids aside."""
    events = ResponseEvents(ResponseShell("m", 1, {}))
    raw = b""
    if before in ("thinking", "both"):
        raw += events.thinking("old thought")
    if before in ("text", "both"):
        raw += events.text("old answer")
    raw += events.restarted()
    result = _result("", calls=(CALL,)) if after == "calls" else _result("new answer")
    if after == "thinking":
        raw += events.thinking("new thought")
        result.reasoning_content = "new thought"
    if after != "calls":
        raw += events.text("new answer")
    out = _events(raw + events.finished(result, {}) + events.completed())
    indexes = [e["output_index"] for e in out if e["type"] == "response.output_item.added"]
    assert indexes == list(range(len(indexes)))  # each new item at the next index
    def shape(items: list[dict[str, Any]]) -> list[Any]:
        return [(i["type"], i.get("status"), i.get("content"), i.get("arguments"))
                for i in items]
    assert shape(out[-1]["response"]["output"]) == shape(output_json(result))


@pytest.mark.parametrize(("grpc_code", "code"), [
    ("UNAVAILABLE", "server_error"), ("DEADLINE_EXCEEDED", "server_error"),
    ("INTERNAL", "server_error"), ("RESOURCE_EXHAUSTED", "rate_limit_exceeded"),
    ("INVALID_ARGUMENT", "invalid_prompt"),
])
def test_a_failure_mid_stream_keeps_the_text_sent_and_uses_openais_codes(
        grpc_code: str, code: str) -> None:
    events = ResponseEvents(ResponseShell("m", 1, {}))
    events.text("Once upon")
    out = _events(events.failed(grpc_code, "gone"))
    assert [e["type"] for e in out] == ["response.output_item.done", "response.failed"]
    item = out[0]["item"]
    assert (item["status"], item["content"][0]["text"]) == ("incomplete", "Once upon")
    response = out[-1]["response"]
    assert response["output"] == [item] and response["error"]["code"] == code


def test_a_cut_answer_is_an_incomplete_message_and_nulls_echo_the_defaults() -> None:
    [item] = output_json(_result("[{\"name\": \"wea", "length"))
    assert item["status"] == "incomplete"
    shell = ResponseShell("m", 1, {"tools": None, "tool_choice": None,
                                   "parallel_tool_calls": None})
    out = shell.json("completed", [], _result("x"))
    assert (out["tools"], out["tool_choice"], out["parallel_tool_calls"]) == ([], "auto", True)
    assert out["usage"]["input_tokens_details"]["cache_write_tokens"] == 0


def test_logprobs_go_with_the_text_as_chat_completions_list_them() -> None:
    result = _result("hi")
    token = result.logprobs.add(token="hi", logprob=-0.5)
    token.top_logprobs.add(token="ho", logprob=-1.5)
    [item] = output_json(result)
    assert item["content"][0]["logprobs"] == [
        {"token": "hi", "logprob": -0.5, "bytes": [104, 105],
         "top_logprobs": [{"token": "ho", "logprob": -1.5, "bytes": [104, 111]}]}]
