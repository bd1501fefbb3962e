"""GET /v1/responses/<id>/input_items: the items a stored response was generated from, as
OpenAI lists them (what `client.responses.input_items.list` reads): the turns it continues
(each one's input, then its output) and its own input, every item with an id, paged by item
id (`after`, `before`), `limit` 1-100 (20), `order` desc (newest first, the default) or asc.

Pure: the stored records in, the list out (cache/stored_responses.py reads them). Input
items are stored as the prompt used them (gateway/responses_format.py `input_items`), without
ids; each is given one made of its response's id and its place there, so a list read twice
names its items alike and a cursor keeps its place. A turn deleted or expired since the
response was made is left out (its items are gone)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from multidict import MultiMapping

from cache.conversation_store import ITEM_PREFIX
from gateway.openai_format import BadRequest
from gateway.responses_format import INCLUDES

MAX_LIMIT = 100


def listed_item(item: Mapping[str, Any], item_id: str) -> dict[str, Any]:
    """A stored input item as a listed one: with its id, a status, a message's text as
    content parts (an assistant's as output text, as the model's own messages are)."""
    kind = item["type"]
    if kind == "message":
        role, text = item["role"], item["content"]
        part = {"type": "output_text", "text": text, "annotations": []} if role == "assistant" \
            else {"type": "input_text", "text": text}
        return {"id": item_id, "type": "message", "role": role, "status": "completed",
                "content": [part]}
    return {"id": item_id, **item, "status": "completed"}


def _inputs(response_id: str, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    hex_id = response_id.removeprefix("resp_")
    return [listed_item(item, f"{ITEM_PREFIX.get(item.get('type', ''), 'item')}_{hex_id}{i:04x}")
            for i, item in enumerate(record["input"])]


def listed_items(response_id: str, record: Mapping[str, Any],
                earlier: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[dict[str, Any]]:
    """Every item `response_id` was generated from, oldest first: each earlier turn's input
    and output (those still stored), then its own input."""
    items: list[dict[str, Any]] = []
    for rid, turn in earlier:
        if turn is not None:
            items += [*_inputs(rid, turn), *turn["response"]["output"]]
    return [*items, *_inputs(response_id, record)]


def _one(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} may be given once", name)
    return values[0] if values else None


def _check_includes(query: MultiMapping[str]) -> None:
    for name in [*query.getall("include", []), *query.getall("include[]", [])]:
        if name not in INCLUDES:
            raise BadRequest(f"include: {name!r} is not supported (supported: "
                             f"{', '.join(sorted(INCLUDES))})", "include")


def check_retrieve_query(query: MultiMapping[str]) -> None:
    """GET /v1/responses/<id>'s query: `include` as a list's; `stream` false only (a stored
    response is returned whole, not replayed as events). BadRequest naming the parameter."""
    _check_includes(query)
    stream = _one(query, "stream")
    if stream is not None and stream.lower() not in ("false", "0"):
        raise BadRequest("stream: a stored response is returned whole; replaying it as events "
                         "is not supported", "stream")


def page(items: Sequence[dict[str, Any]], query: MultiMapping[str],
         of: str = "this response's input items") -> dict[str, Any]:
    """One page of `items` (oldest first) as OpenAI's list object, by the request's query:
    `limit`, `order`, `after` / `before` (an item id of the list), `include` (OpenAI's
    includable fields: what these items hold already). BadRequest naming the parameter (and
    the list, `of`, an unknown item id was looked for in)."""
    raw_limit = _one(query, "limit")
    if raw_limit is None:
        limit = 20
    elif not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_LIMIT):
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    else:
        limit = int(raw_limit)
    order = _one(query, "order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc", "order")
    _check_includes(query)
    ordered = list(items) if order == "asc" else list(reversed(items))
    after, before = _one(query, "after"), _one(query, "before")
    if after is not None:
        ordered = ordered[_place(ordered, after, "after", of) + 1:]
    if before is not None:
        ordered = ordered[:_place(ordered, before, "before", of)]
        data = ordered[-limit:] if after is None else ordered[:limit]
    else:
        data = ordered[:limit]
    return {"object": "list", "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(ordered) > len(data)}


def _place(items: Sequence[dict[str, Any]], item_id: str, name: str, of: str) -> int:
    for i, item in enumerate(items):
        if item.get("id") == item_id:
            return i
    raise BadRequest(f"{name}: no item {item_id!r} among {of} (in this order)", name)
