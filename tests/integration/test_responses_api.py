"""POST /v1/responses through the real mesh, driven by the official `openai` client's
`responses` resource (what the OpenAI Agents SDK's default model calls): text, streamed
events, function tools and their outputs, structured output, an answer cut at
max_output_tokens, and clear errors for what is not served."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import openai
import pytest

from ostinato.mesh import Mesh

MODEL = "sim/llama-3.1-8b"
WEATHER = {"type": "function", "name": "weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False},
           "strict": True}


def test_a_text_answer(acme: openai.OpenAI) -> None:
    raw = acme.responses.with_raw_response.create(
        model=MODEL, instructions="Answer briefly.", input="Name a colour.",
        max_output_tokens=200, temperature=0.7, metadata={"run": "1"})
    out = raw.parse()
    assert out.object == "response" and out.id.startswith("resp_") and out.status == "completed"
    [message] = out.output
    assert message.type == "message" and message.role == "assistant"
    assert out.output_text and out.output_text == message.content[0].text
    assert out.usage is not None and 0 < out.usage.output_tokens <= 200
    assert out.usage.total_tokens == out.usage.input_tokens + out.usage.output_tokens
    assert out.metadata == {"run": "1"} and out.instructions == "Answer briefly."
    assert raw.headers["X-Ostinato-Cache-Hit"] == "miss"
    assert out.model_extra["ostinato"]["program_id"]  # type: ignore[index]


def test_an_answer_cut_at_max_output_tokens_is_incomplete(acme: openai.OpenAI) -> None:
    out = acme.responses.create(model=MODEL, input="Tell me a long story.", max_output_tokens=3)
    assert out.status == "incomplete" and out.incomplete_details is not None
    assert out.incomplete_details.reason == "max_output_tokens"
    assert out.usage is not None and out.usage.output_tokens == 3


def test_streamed_events_build_the_same_answer(acme: openai.OpenAI) -> None:
    events = list(acme.responses.create(model=MODEL, input="Count to five.",
                                        max_output_tokens=12, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    [done] = [e for e in events if e.type == "response.output_text.done"]
    final = events[-1].response  # type: ignore[union-attr]
    assert text and done.text == text == final.output_text
    assert final.usage is not None and final.usage.output_tokens <= 12
    # the SDK's helper assembles the answer from the events (a complete one: it wants
    # response.completed, where a cut answer ends with response.incomplete, as OpenAI's do)
    with acme.responses.stream(model=MODEL, input="Count to five.",
                               max_output_tokens=400) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text


def test_a_function_call_and_its_output_go_round(acme: openai.OpenAI) -> None:
    first = acme.responses.create(model=MODEL, input="What is the weather in Bergen?",
                                  tools=[WEATHER], tool_choice="required",
                                  max_output_tokens=200)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and all(c.name == "weather" and c.call_id for c in calls)
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    # the tool's output sent back as the next input, with the call items (as agents do)
    then = acme.responses.create(
        model=MODEL, tools=[WEATHER], max_output_tokens=200,
        input=[{"role": "user", "content": "What is the weather in Bergen?"},
               *[c.model_dump() for c in calls],
               *[{"type": "function_call_output", "call_id": c.call_id, "output": "rain, 9 C"}
                 for c in calls]])
    assert then.status in ("completed", "incomplete") and then.output
    # streamed, the call arrives as a function_call item with its arguments
    events = list(acme.responses.create(model=MODEL, input="Weather in Oslo?", tools=[WEATHER],
                                        tool_choice={"type": "function", "name": "weather"},
                                        max_output_tokens=200, stream=True))
    args = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert args and args[0].name == "weather" and json.loads(args[0].arguments)["city"]


def test_an_agent_with_an_output_type_and_a_forced_tool_call(acme: openai.OpenAI) -> None:
    """The Agents SDK sends text.format (its output type) with every turn, also with
    tool_choice required: this turn is the call, the format is for the final answer."""
    fmt = {"type": "json_schema", "name": "city", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
        "additionalProperties": False}}
    out = acme.responses.create(model=MODEL, input="Weather in Oslo?", tools=[WEATHER],
                                tool_choice="required", text={"format": fmt},
                                max_output_tokens=200, prompt_cache_options={"mode": "implicit"},
                                extra_body={"max_tool_calls": 2})
    assert out.output and {i.type for i in out.output} == {"function_call"}
    final = acme.responses.create(model=MODEL, text={"format": fmt}, max_output_tokens=200,
                                  input=[{"role": "user", "content": "Name a city."}])
    assert isinstance(json.loads(final.output_text)["name"], str)


def test_structured_output(acme: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    out = acme.responses.create(model=MODEL, input="Invent a person.", max_output_tokens=200,
                                text={"format": {"type": "json_schema", "name": "person",
                                                 "schema": schema, "strict": True}})
    person = json.loads(out.output_text)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


@pytest.mark.parametrize(("kw", "status", "param"), [
    ({"previous_response_id": "resp_1"}, 400, "previous_response_id"),
    ({"previous_response_id": "resp_" + "0" * 32}, 400, "previous_response_id"),
    ({"tools": [{"type": "web_search"}]}, 400, "tools"),
    ({"input": [{"type": "input_image", "image_url": "http://x"}]}, 400, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     400, "input"),
    ({"input": [{"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "", "output": "42"}]}, 400, "input"),
    ({"input": []}, 400, "input"),
    ({"max_output_tokens": 10**9}, 400, None),
    ({"max_output_tokens": "many"}, 400, "max_output_tokens"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"properties": 5}}}},
     400, "text"),
    ({"reasoning": {"effort": "extreme"}}, 400, "reasoning"),
    ({"reasoning": {"effort": "low", "budget": 100}}, 400, "reasoning"),
    ({"model": "gpt-4o"}, 404, "model"),
    # a function call's output for a call the model never made (as OpenAI refuses it)
    ({"input": [{"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "call_9", "output": "42"}]},
     400, "input"),
    ({"extra_body": {"frobnicate": 1}}, 400, "frobnicate"),
])
def test_what_is_not_served_gets_a_clear_error(acme: openai.OpenAI, kw: dict,
                                               status: int, param: str | None) -> None:
    args = {"model": MODEL, "input": "hello", "max_output_tokens": 4, **kw}
    with pytest.raises(openai.APIStatusError) as err:
        acme.responses.create(**args)
    assert err.value.status_code == status
    body = err.value.body
    assert isinstance(body, dict) and body["message"]
    if param is not None:
        assert body["param"] == param


def test_an_output_for_no_call_is_refused_naming_its_item(acme: openai.OpenAI) -> None:
    made = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    with pytest.raises(openai.BadRequestError) as err:
        acme.responses.create(model=MODEL, max_output_tokens=4, input=[
            {"role": "user", "content": "hi"}, made,
            {"type": "function_call_output", "call_id": "call_2", "output": "42"}])
    assert "input[2].call_id 'call_2' answers no tool call" in str(err.value.body)


@pytest.fixture(scope="module")
def globex(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"http://{mesh.endpoints.gateway_http}/v1", api_key="key-globex",
                       max_retries=0) as client:
        yield client


def _ext(response: object) -> dict:
    return response.model_extra["ostinato"]  # type: ignore[attr-defined,no-any-return]


def test_a_stored_response_continues_in_the_same_program(acme: openai.OpenAI) -> None:
    """previous_response_id: the stored turn comes before the new input (the engine is given
    that history), and the call joins the program of the one it continues, as its child,
    though its instructions differ (the stored record names the call it continues)."""
    first = acme.responses.create(model=MODEL, instructions="Be brief.",
                                  input="My name is Ada. Say hello.", max_output_tokens=12)
    assert first.store is True and first.previous_response_id is None
    then = acme.responses.create(model=MODEL, previous_response_id=first.id,
                                 input="What is my name?", max_output_tokens=12)
    assert then.previous_response_id == first.id and then.store is True
    assert _ext(then)["program_id"] == _ext(first)["program_id"]
    assert _ext(then)["parent_call_ids"] == [_ext(first)["call_id"]]
    assert first.usage is not None and then.usage is not None
    assert then.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    # streamed, on top of the chain: stored once complete, and continued again
    events = list(acme.responses.create(model=MODEL, previous_response_id=then.id, stream=True,
                                        input="And now?", max_output_tokens=8))
    last = events[-1].response  # type: ignore[union-attr]
    assert last.store is True and last.previous_response_id == then.id
    assert _ext(last)["parent_call_ids"] == [_ext(then)["call_id"]]
    assert acme.responses.retrieve(last.id).output_text == last.output_text
    fourth = acme.responses.create(model=MODEL, previous_response_id=last.id, input="Bye.",
                                   max_output_tokens=4)
    assert _ext(fourth)["program_id"] == _ext(first)["program_id"]


def test_a_function_call_continued_by_its_output(acme: openai.OpenAI) -> None:
    first = acme.responses.create(model=MODEL, input="What is the weather in Bergen?",
                                  tools=[WEATHER], tool_choice="required", max_output_tokens=200)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls
    then = acme.responses.create(
        model=MODEL, tools=[WEATHER], previous_response_id=first.id, max_output_tokens=50,
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "rain, 9 C"}
               for c in calls])
    assert then.status in ("completed", "incomplete") and then.output
    assert _ext(then)["parent_call_ids"] == [_ext(first)["call_id"]]


def test_a_stored_response_is_read_and_deleted_by_its_tenant_only(
        acme: openai.OpenAI, globex: openai.OpenAI) -> None:
    out = acme.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=6,
                                metadata={"run": "r"})
    again = acme.responses.retrieve(out.id)
    assert again.model_dump() == out.model_dump()
    with pytest.raises(openai.BadRequestError) as refused:  # not replayed as events
        list(acme.responses.retrieve(out.id, stream=True))
    assert refused.value.param == "stream"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        globex.responses.retrieve(out.id)  # as if there were none
    with pytest.raises(openai.NotFoundError):
        globex.responses.delete(out.id)
    with pytest.raises(openai.BadRequestError) as err:
        globex.responses.create(model=MODEL, previous_response_id=out.id, input="x",
                                max_output_tokens=2)
    body = err.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"]) == ("previous_response_not_found", "previous_response_id")
    acme.responses.delete(out.id)
    for gone in (lambda: acme.responses.retrieve(out.id), lambda: acme.responses.delete(out.id)):
        with pytest.raises(openai.NotFoundError):
            gone()
    with pytest.raises(openai.BadRequestError):
        acme.responses.create(model=MODEL, previous_response_id=out.id, input="x",
                              max_output_tokens=2)


def test_input_items_list_every_turn_paged_for_its_tenant_only(
        acme: openai.OpenAI, globex: openai.OpenAI) -> None:
    """responses.input_items.list: the turns a response continues (input and output) and
    its own input, newest first by default; the SDK's pages walk them all by `after`."""
    first = acme.responses.create(model=MODEL, instructions="Be brief.", input="Hi, I am Ada.",
                                  max_output_tokens=6)
    then = acme.responses.create(
        model=MODEL, previous_response_id=first.id, max_output_tokens=6,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Name?"}]},
               {"role": "developer", "content": "Answer in one word."}])
    newest_first = list(acme.responses.input_items.list(then.id))
    assert [(i.type, getattr(i, "role", None)) for i in newest_first] == [
        ("message", "developer"), ("message", "user"), ("message", "assistant"),
        ("message", "user")]
    assert newest_first[2].id == first.output[0].id  # the first turn's answer, as it was
    assert newest_first[1].content[0].text == "Name?"  # type: ignore[union-attr]
    assert newest_first[3].content[0].text == "Hi, I am Ada."  # type: ignore[union-attr]
    paged = acme.responses.input_items.list(then.id, limit=1, order="asc")
    assert paged.has_more and len(paged.data) == 1
    assert [i.id for i in paged] == [i.id for i in reversed(newest_first)]  # every page
    with pytest.raises(openai.NotFoundError):
        globex.responses.input_items.list(then.id)
    with pytest.raises(openai.BadRequestError) as err:
        acme.responses.input_items.list(then.id, limit=101)
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "limit"
    acme.responses.delete(first.id)  # a turn gone: its items with it
    assert [i.id for i in acme.responses.input_items.list(then.id)] == [
        i.id for i in newest_first[:2]]


def test_store_false_keeps_nothing(acme: openai.OpenAI) -> None:
    out = acme.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=6,
                                store=False)
    assert out.store is False
    with pytest.raises(openai.NotFoundError):
        acme.responses.retrieve(out.id)


def test_a_bad_continuation_is_refused_before_any_stored_turn_is_read(
        acme: openai.OpenAI) -> None:
    """The request's own fields are checked first: an id of no stored response does not
    mask them (nor does a stored one cost a read for a request refused anyway)."""
    with pytest.raises(openai.BadRequestError) as err:
        acme.responses.create(model=MODEL, input="x", previous_response_id="resp_" + "0" * 32,
                              extra_body={"tools": "not-a-list"})
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "tools"


def test_any_text_is_stored_and_continued(mesh: Mesh, acme: openai.OpenAI) -> None:
    """JSON may escape a lone surrogate, which no UTF-8 encoder takes: stored all the same
    (the client here writes the escape itself: the openai client cannot send one)."""
    body = json.dumps({"model": MODEL, "input": "Name a colour.", "max_output_tokens": 4,
                       "metadata": {"note": "lone \ud800 surrogate"}}).encode()  # escaped
    req = urllib.request.Request(f"http://{mesh.endpoints.gateway_http}/v1/responses", data=body,
                                 headers={"Authorization": "Bearer key-acme",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert out["metadata"] == {"note": "lone \ud800 surrogate"} and out["store"] is True
    raw = acme.responses.with_raw_response.retrieve(out["id"])
    assert json.loads(raw.http_response.content)["metadata"] == out["metadata"]
    then = acme.responses.create(model=MODEL, previous_response_id=out["id"], input="Another?",
                                 max_output_tokens=4)
    assert _ext(then)["parent_call_ids"] == [out["ostinato"]["call_id"]]
