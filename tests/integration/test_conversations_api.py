"""/v1/conversations through the real mesh, driven by the official `openai` client's
`conversations` resource: a conversation created with items, items added, listed in pages
and in either order, read and deleted one by one, its metadata replaced, the whole
deleted; another tenant's is not found; bad input is a 400 naming the field; a response run
in a conversation (`conversation`) is given its items and adds its turn to it. (The OpenAI
Agents SDK on it: tests/integration/test_agent_frameworks.py.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import openai
import pytest

from ostinato.mesh import Mesh


def _client(mesh: Mesh, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{mesh.endpoints.gateway_http}/v1", api_key=key,
                         max_retries=0)


@pytest.fixture(scope="module")
def acme(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with _client(mesh, "key-acme") as client:
        yield client


@pytest.fixture(scope="module")
def globex(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with _client(mesh, "key-globex") as client:
        yield client


def test_a_conversation_kept_item_by_item(acme: openai.OpenAI, globex: openai.OpenAI) -> None:
    conv = acme.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Weather in Oslo?"}],
        metadata={"topic": "weather"})
    assert conv.id.startswith("conv_") and conv.metadata == {"topic": "weather"}
    added = acme.conversations.items.create(conv.id, items=[
        {"type": "function_call", "call_id": "c1", "name": "weather",
         "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "rain, 9 C"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]},
        {"type": "reasoning", "summary": []}])  # another model's reasoning: dropped
    assert [i.type for i in added.data] == ["function_call", "function_call_output", "message"]
    oldest_first = list(acme.conversations.items.list(conv.id, order="asc", limit=2))  # pages
    assert [i.type for i in oldest_first] == ["message", "function_call",
                                              "function_call_output", "message"]
    assert [i.id for i in acme.conversations.items.list(conv.id)] == [
        i.id for i in reversed(oldest_first)]  # newest first by default
    first = oldest_first[0]
    assert first.content[0].text == "Weather in Oslo?"  # type: ignore[union-attr]
    assert acme.conversations.items.retrieve(first.id, conversation_id=conv.id).id == first.id
    # the items, sent back as a response's input, are taken as they are listed
    answer = acme.responses.create(model="sim/llama-3.1-8b", max_output_tokens=6, input=[
        i.model_dump(exclude_unset=True) for i in oldest_first])
    assert answer.status in ("completed", "incomplete")
    for other in (lambda: globex.conversations.retrieve(conv.id),
                  lambda: globex.conversations.items.list(conv.id),
                  lambda: globex.conversations.items.delete(first.id, conversation_id=conv.id),
                  lambda: globex.conversations.delete(conv.id)):
        with pytest.raises(openai.NotFoundError):
            other()  # as if there were none
    assert acme.conversations.items.delete(first.id, conversation_id=conv.id).id == conv.id
    with pytest.raises(openai.NotFoundError):
        acme.conversations.items.retrieve(first.id, conversation_id=conv.id)
    assert len(list(acme.conversations.items.list(conv.id))) == 3
    assert acme.conversations.update(conv.id, metadata={"topic": "done"}).metadata == {
        "topic": "done"}
    assert acme.conversations.delete(conv.id).deleted
    with pytest.raises(openai.NotFoundError):
        acme.conversations.items.list(conv.id)
    assert acme.conversations.create().id != conv.id  # no body at all: an empty one


@pytest.mark.parametrize(("call", "param"), [
    (lambda c, cid: c.conversations.create(items=[{"type": "input_image"}]), "items"),
    (lambda c, cid: c.conversations.create(items=[{"role": "user", "content": "x"}] * 21),
     "items"),
    (lambda c, cid: c.conversations.create(metadata={"k": "v" * 513}), "metadata"),
    (lambda c, cid: c.conversations.create(extra_body={"frobnicate": 1}), "frobnicate"),
    (lambda c, cid: c.conversations.items.create(cid, items=[{"role": "robot", "content": "x"}]),
     "items"),
    (lambda c, cid: c.conversations.items.create(cid, items=[
        {"role": "user", "content": "x" * 50_001}]), "items"),  # the gateway's prompt limit
    (lambda c, cid: c.conversations.items.list(cid, limit=0), "limit"),
    (lambda c, cid: c.conversations.items.list(cid, after="msg_nope"), "after"),
])
def test_bad_input_is_refused_naming_the_field(acme: openai.OpenAI, call: object,
                                               param: str) -> None:
    conv = acme.conversations.create()
    with pytest.raises(openai.BadRequestError) as err:
        call(acme, conv.id)  # type: ignore[operator]
    assert isinstance(err.value.body, dict) and err.value.body["param"] == param
    assert list(acme.conversations.items.list(conv.id)) == []  # nothing kept


def _ext(response: object) -> dict:
    return response.model_extra["ostinato"]  # type: ignore[attr-defined,no-any-return]


def test_responses_in_a_conversation(acme: openai.OpenAI, globex: openai.OpenAI) -> None:
    """`conversation`: its items come before the input (the engine is given them) and the
    turn's input and output are added to it, so the next turn continues the same program."""
    conv = acme.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    first = acme.responses.create(model="sim/llama-3.1-8b", conversation=conv.id,
                                  input="Say hello.", max_output_tokens=8)
    assert first.conversation is not None and first.conversation.id == conv.id
    assert first.usage is not None
    items = list(acme.conversations.items.list(conv.id, order="asc"))
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "user"), ("message", "assistant")]
    assert items[2].content[0].text == first.output_text  # type: ignore[union-attr]
    answer_id = first.output[-1].id  # the conversation keeps the answer under the same id
    assert acme.conversations.items.retrieve(answer_id, conversation_id=conv.id).id == answer_id
    events = list(acme.responses.create(model="sim/llama-3.1-8b", conversation={"id": conv.id},
                                        input="What is my name?", max_output_tokens=8,
                                        stream=True))
    then = events[-1].response  # type: ignore[union-attr]
    assert then.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert _ext(then)["program_id"] == _ext(first)["program_id"]  # the same program
    assert _ext(then)["parent_call_ids"] == [_ext(first)["call_id"]]
    assert len(list(acme.conversations.items.list(conv.id))) == 5  # added before it ended
    with pytest.raises(openai.NotFoundError) as err:
        globex.responses.create(model="sim/llama-3.1-8b", conversation=conv.id, input="x",
                                max_output_tokens=2)
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "conversation"
    with pytest.raises(openai.BadRequestError) as bad:
        acme.responses.create(model="sim/llama-3.1-8b", conversation=conv.id, input="x",
                              previous_response_id=first.id, max_output_tokens=2)
    assert isinstance(bad.value.body, dict) and bad.value.body["param"] == "conversation"
    assert len(list(acme.conversations.items.list(conv.id))) == 5  # nothing added by either


def test_a_response_run_in_a_conversation_continued_by_id_keeps_the_conversation(
        acme: openai.OpenAI) -> None:
    """API review 2026-12-06: continued with previous_response_id, a response that ran in a
    conversation lost the conversation's items (its context shrank from 281 tokens to 50,
    no error). Its stored input is what it ran on: the conversation's items and its own."""
    conv = acme.conversations.create(items=[{"role": "user", "content": "My name is Zed. " * 50}])
    first = acme.responses.create(model="sim/llama-3.1-8b", conversation=conv.id,
                                  input="hello", max_output_tokens=8)
    then = acme.responses.create(model="sim/llama-3.1-8b", previous_response_id=first.id,
                                 input="And then?", max_output_tokens=2)
    assert first.usage is not None and then.usage is not None
    assert then.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    listed = [i.content[0].text for i in acme.responses.input_items.list(first.id, order="asc")]  # type: ignore[union-attr]
    assert listed == ["My name is Zed. " * 50, "hello"]


@pytest.mark.parametrize("path", ["/v1/conversations", "/v1/conversations/{cid}/items"])
def test_an_item_that_is_not_unicode_is_refused_when_added(mesh: Mesh, acme: openai.OpenAI,
                                                           path: str) -> None:
    """API review 2026-12-06: a lone surrogate escape in an item was kept, and every response
    run in the conversation then failed; an input holding one is refused when sent, and so
    is an item now (the openai client cannot send one: the escape is written here)."""
    conv = acme.conversations.create()
    body = b'{"items": [{"role": "user", "content": "\\ud800x"}]}'
    req = urllib.request.Request(f"http://{mesh.endpoints.gateway_http}" +
                                 path.format(cid=conv.id), data=body,
                                 headers={"Authorization": "Bearer key-acme",
                                          "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    error = json.loads(err.value.read())["error"]
    assert err.value.code == 400 and error["param"] == "items"
    assert "lone surrogate" in error["message"]
    assert list(acme.conversations.items.list(conv.id)) == []  # nothing kept
