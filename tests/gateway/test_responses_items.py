"""A stored response's input items as OpenAI lists them (gateway/responses_items.py): every
item of the turns it continues and its own input, each with a stable id, paged."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from gateway.openai_format import BadRequest
from gateway.responses_items import listed_items, page

R1, R2, R3 = ("resp_" + c * 32 for c in "abc")


def record(inputs: list[dict[str, Any]], output: list[dict[str, Any]]) -> dict[str, Any]:
    return {"input": inputs, "response": {"output": output}, "call": {}, "chain": []}


def said(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": text}


ANSWER = {"id": "msg_out1", "type": "message", "role": "assistant", "status": "completed",
          "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}
CALL = {"id": "fc_out2", "type": "function_call", "call_id": "call_1", "name": "weather",
        "arguments": "{}", "status": "completed"}


def test_every_turn_listed_oldest_first_with_ids() -> None:
    first = record([said("system", "Be brief."), said("user", "Hi")], [ANSWER, CALL])
    last = record([{"type": "function_call_output", "call_id": "call_1", "output": "rain"},
                   said("assistant", "earlier words")], [])
    items = listed_items(R3, last, [(R1, first), (R2, None)])  # R2 deleted since
    assert [i["id"] for i in items] == [
        "msg_" + "a" * 32 + "0000", "msg_" + "a" * 32 + "0001", "msg_out1", "fc_out2",
        "fco_" + "c" * 32 + "0000", "msg_" + "c" * 32 + "0001"]
    assert items[0] == {"id": items[0]["id"], "type": "message", "role": "system",
                        "status": "completed",
                        "content": [{"type": "input_text", "text": "Be brief."}]}
    assert items[4] == {"id": items[4]["id"], "type": "function_call_output",
                        "call_id": "call_1", "output": "rain", "status": "completed"}
    assert items[5]["content"] == [{"type": "output_text", "text": "earlier words",
                                    "annotations": []}]
    assert listed_items(R3, last, [(R1, first)]) == items  # read again: the same ids


ITEMS = [{"id": f"i{n}"} for n in range(1, 8)]  # oldest first


def ids(query: dict[str, Any]) -> tuple[list[str], bool, str | None, str | None]:
    got = page(ITEMS, MultiDict(query))
    assert got["object"] == "list"
    return [i["id"] for i in got["data"]], got["has_more"], got["first_id"], got["last_id"]


@pytest.mark.parametrize(("query", "want", "more"), [
    ({}, ["i7", "i6", "i5", "i4", "i3", "i2", "i1"], False),  # desc, the default
    ({"order": "asc"}, ["i1", "i2", "i3", "i4", "i5", "i6", "i7"], False),
    ({"limit": "3"}, ["i7", "i6", "i5"], True),
    ({"limit": "3", "after": "i5"}, ["i4", "i3", "i2"], True),
    ({"limit": "3", "after": "i2"}, ["i1"], False),
    ({"limit": "3", "order": "asc", "after": "i3"}, ["i4", "i5", "i6"], True),
    ({"limit": "2", "before": "i3"}, ["i5", "i4"], True),  # desc: the two just before i3
    ({"order": "asc", "before": "i3"}, ["i1", "i2"], False),
    ({"after": "i6", "before": "i3"}, ["i5", "i4"], False),
    ({"after": "i1"}, [], False),
    ({"limit": "100"}, ["i7", "i6", "i5", "i4", "i3", "i2", "i1"], False),
])
def test_pages(query: dict[str, Any], want: list[str], more: bool) -> None:
    got, has_more, first, last = ids(query)
    assert (got, has_more) == (want, more)
    assert (first, last) == ((want[0], want[-1]) if want else (None, None))


def test_a_client_walks_every_page() -> None:
    seen: list[str] = []
    query: dict[str, str] = {"limit": "2", "order": "asc"}
    while True:
        got = page(ITEMS, MultiDict(query))
        seen += [i["id"] for i in got["data"]]
        if not got["has_more"]:
            break
        query["after"] = got["last_id"]
    assert seen == [i["id"] for i in ITEMS]


@pytest.mark.parametrize(("query", "param"), [
    ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"limit": "٣"}, "limit"), ({"order": "up"}, "order"),
    ({"after": "nope"}, "after"), ({"before": "nope"}, "before"),
    ({"include": "file_search_call.results"}, "include"),
    ([("limit", "2"), ("limit", "3")], "limit"),
])
def test_bad_parameters_are_named(query: Any, param: str) -> None:
    with pytest.raises(BadRequest) as err:
        page(ITEMS, MultiDict(query))
    assert err.value.param == param


@pytest.mark.parametrize(("of", "said"), [
    ({}, "among this response's input items"),
    ({"of": "this conversation's items"}, "among this conversation's items"),
])
def test_an_unknown_item_names_the_list_it_was_looked_for_in(of: dict, said: str) -> None:
    with pytest.raises(BadRequest, match=f"after: no item 'nope' {said}"):
        page(ITEMS, MultiDict({"after": "nope"}), **of)


def test_known_includes_are_accepted_in_either_form() -> None:
    for name in ("include", "include[]"):
        assert page(ITEMS, MultiDict({name: "message.output_text.logprobs"}))["data"]
