"""/v1/conversations: OpenAI's Conversations API, what the OpenAI Agents SDK's
OpenAIConversationsSession keeps an agent's history in (create, list its items, add
items, delete one, delete the conversation). Stored per tenant in Redis
(cache/conversation_store.py); another tenant's conversation is not found (404).

Items are checked as a Responses request's input items are and kept as a prompt uses
them (gateway/responses_format.py `checked_items`: messages, function calls and their
outputs; another model's reasoning is dropped), each given an id of its own; they are
listed as the Responses API lists input items (gateway/responses_items.py), so a client
can send them back as a response's input. POST /v1/responses with `conversation` reads
them and adds its turn (gateway/responses_api.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
import structlog
from aiohttp import web

from cache.conversation_store import (
    ConversationStore,
    ConversationsUnavailable,
    TooManyConversations,
    TooManyItems,
)
from gateway.core import GatewayError
from gateway.openai_fields import check_metadata
from gateway.openai_format import BadRequest
from gateway.responses_format import checked_items
from gateway.responses_items import listed_item, page

log = structlog.get_logger(__name__)

ITEMS_PER_REQUEST = 20  # OpenAI's limit on items created by one request
_T = TypeVar("_T")


def _not_found(what: str, name: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.NOT_FOUND, f"{what} with id {name!r} not found.")


def _body(body: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    check_metadata(body.get("metadata"))
    return body


def _list(items: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


class ConversationsApi:
    """The routes' logic: each takes the caller's tenant and the request's parts, and
    returns the JSON to answer with (GatewayError / BadRequest otherwise)."""

    def __init__(self, store: ConversationStore | None, max_chars: int) -> None:
        self._store = store
        self._max_chars = max_chars

    async def _do(self, op: Awaitable[_T]) -> _T:
        try:
            return await op
        except ConversationsUnavailable as exc:
            log.warning("conversations unavailable", error=str(exc))  # not to the caller
            raise GatewayError(grpc.StatusCode.UNAVAILABLE,
                               "conversations are unavailable (Redis); retry later") from None
        except TooManyConversations as exc:
            raise GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), final=True) from None

    def _stored(self) -> ConversationStore:
        if self._store is None:
            raise GatewayError(grpc.StatusCode.UNAVAILABLE,
                               "conversations are not stored by this gateway (it has no Redis)")
        return self._store

    def _items(self, raw: Any) -> list[dict[str, Any]]:
        return checked_items(raw, "items", ITEMS_PER_REQUEST, self._max_chars)

    async def create(self, tenant: str, raw: Any) -> dict[str, Any]:
        body = _body(raw, {"items", "metadata"})
        items = self._items(body.get("items") or [])
        store = self._stored()
        try:
            obj, _ = await self._do(store.create(tenant, body.get("metadata") or {}, items))
        except TooManyItems as exc:
            raise BadRequest(str(exc), "items") from None
        return obj

    async def get(self, tenant: str, cid: str) -> dict[str, Any]:
        obj = await self._do(self._stored().get(tenant, cid))
        if obj is None:
            raise _not_found("Conversation", cid)
        return obj

    async def update(self, tenant: str, cid: str, raw: Any) -> dict[str, Any]:
        body = _body(raw, {"metadata"})
        if "metadata" not in body:
            raise BadRequest("metadata is required", "metadata")
        obj = await self._do(self._stored().update(tenant, cid, body["metadata"] or {}))
        if obj is None:
            raise _not_found("Conversation", cid)
        return obj

    async def delete(self, tenant: str, cid: str) -> dict[str, Any]:
        if not await self._do(self._stored().delete(tenant, cid)):
            raise _not_found("Conversation", cid)
        return {"id": cid, "object": "conversation.deleted", "deleted": True}

    async def add_items(self, tenant: str, cid: str, raw: Any) -> dict[str, Any]:
        body = _body(raw, {"items"})
        items = self._items(body.get("items"))
        if not items:  # another model's reasoning only: nothing is kept
            return _list([])
        try:
            added = await self._do(self._stored().add(tenant, cid, items))
        except TooManyItems as exc:
            raise BadRequest(f"{exc}; start a new conversation", "items") from None
        if added is None:
            raise _not_found("Conversation", cid)
        return _list([listed_item(item, item["id"]) for item in added])

    async def list_items(self, tenant: str, cid: str, query: Any) -> dict[str, Any]:
        store = self._stored()
        got = await self._do(store.ids(tenant, cid))
        if got is None:
            raise _not_found("Conversation", cid)
        paged = page([{"id": i} for i in got[1]], query, of="this conversation's items")
        ids = [i["id"] for i in paged["data"]]
        found = await self._do(store.items(tenant, cid, ids))
        data = [listed_item(item, item["id"]) for item in found if item is not None]
        return _list(data, paged["has_more"])

    async def get_item(self, tenant: str, cid: str, item_id: str) -> dict[str, Any]:
        store = self._stored()
        if await self._do(store.get(tenant, cid)) is None:
            raise _not_found("Conversation", cid)
        [item] = await self._do(store.items(tenant, cid, [item_id]))
        if item is None:
            raise _not_found("Item", item_id)
        return listed_item(item, item["id"])

    async def delete_item(self, tenant: str, cid: str, item_id: str) -> dict[str, Any]:
        gone = await self._do(self._stored().delete_item(tenant, cid, item_id))
        if gone is None:
            raise _not_found("Conversation", cid)
        if not gone:
            raise _not_found("Item", item_id)
        return await self.get(tenant, cid)


def routes(api: ConversationsApi, tenant_of: Any, json_of: Any) -> list[web.RouteDef]:
    """The HTTP routes over `api`: `tenant_of(request)` authenticates, `json_of(request)`
    reads a JSON body (both the gateway's own, gateway/http_api.py)."""
    cid, iid = "{conversation_id}", "{item_id}"

    def handler(fn: Any, body: bool = False, query: bool = False) -> Any:
        async def handle(request: web.Request) -> web.Response:
            tenant = tenant_of(request)
            args: list[Any] = [request.match_info[k] for k in ("conversation_id", "item_id")
                    if k in request.match_info]
            if body:  # no body at all reads as {} (JSON null does not)
                args.append(await json_of(request) if request.can_read_body else {})
            if query:
                args.append(request.query)
            return web.json_response(await fn(tenant, *args))
        return handle

    return [
        web.post("/v1/conversations", handler(api.create, body=True)),
        web.get(f"/v1/conversations/{cid}", handler(api.get)),
        web.post(f"/v1/conversations/{cid}", handler(api.update, body=True)),
        web.delete(f"/v1/conversations/{cid}", handler(api.delete)),
        web.get(f"/v1/conversations/{cid}/items", handler(api.list_items, query=True)),
        web.post(f"/v1/conversations/{cid}/items", handler(api.add_items, body=True)),
        web.get(f"/v1/conversations/{cid}/items/{iid}", handler(api.get_item)),
        web.delete(f"/v1/conversations/{cid}/items/{iid}", handler(api.delete_item)),
    ]
