"""The OpenAPI document's part for /v1/conversations (gateway/conversations_api.py): the
schemas of what those routes take and answer, and their paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cache.conversation_store import MAX_ITEMS
from gateway.conversations_api import ITEMS_PER_REQUEST
from gateway.openapi_requests import Schema, metadata_schema, obj, ref, text
from ostinato.config import GatewayConfig


def conversation_schemas(cfg: GatewayConfig) -> dict[str, Schema]:
    items = {"type": "array", "items": ref("ResponsesInputItem"), "maxItems": ITEMS_PER_REQUEST,
             "description": f"at most {ITEMS_PER_REQUEST} items, with at most "
                            f"{cfg.max_prompt_chars} characters of text in all; each is "
                            "given an id (another model's reasoning is dropped)"}
    return {
        "Conversation": obj({"id": text(), "object": {"const": "conversation"},
                             "created_at": {"type": "integer"},
                             "metadata": {"type": "object"}},
                            ("id", "object", "created_at", "metadata"), closed=False,
                            description="OpenAI's conversation object"),
        "ConversationCreateRequest": obj({
            "items": {"oneOf": [{"type": "null"}, items]},
            "metadata": metadata_schema("kept with the conversation")},
            description="a new conversation, with items to start it with"),
        "ConversationUpdateRequest": obj({"metadata": metadata_schema("replaces the old")},
                                         ("metadata",)),
        "ConversationItemsRequest": obj({"items": {**items, "minItems": 1}}, ("items",)),
    }


def conversation_paths(page_query: list[Schema], json_: Callable[[Schema, str], Schema],
                       errors: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Every /v1/conversations path; `page_query`, `json_` and `errors` are the document's
    own (gateway/openapi.py)."""
    cid = {"name": "conversation_id", "in": "path", "required": True, "schema": text()}
    iid = {"name": "item_id", "in": "path", "required": True, "schema": text()}
    conv = json_(ref("Conversation"), "the conversation")

    def body(name: str, required: bool = True) -> Schema:
        return {"required": required, "content": {"application/json": {"schema": ref(name)}}}

    return {
        "/v1/conversations": {"post": {
            "summary": "Create a conversation",
            "description": "A conversation of the caller's tenant (what the OpenAI Agents "
                           "SDK's OpenAIConversationsSession keeps its history in), kept for "
                           "gateway.responses_ttl_s after its last use. The body may be left "
                           "out.",
            "requestBody": body("ConversationCreateRequest", required=False),
            "responses": {"200": conv, **errors(400, 401, 413, 429, 503)}}},
        "/v1/conversations/{conversation_id}": {
            "get": {"summary": "A conversation", "parameters": [cid],
                    "description": "Another tenant's is not found.",
                    "responses": {"200": conv, **errors(401, 404, 503)}},
            "post": {"summary": "Update a conversation's metadata", "parameters": [cid],
                     "description": "Its metadata replaced.",
                     "requestBody": body("ConversationUpdateRequest"),
                     "responses": {"200": conv, **errors(400, 401, 404, 413, 503)}},
            "delete": {"summary": "Delete a conversation", "parameters": [cid],
                       "description": "It and its items are gone.",
                       "responses": {"200": json_(obj({
                           "id": text(), "object": {"const": "conversation.deleted"},
                           "deleted": {"const": True}}, ("id", "object", "deleted")),
                           "the conversation is gone"), **errors(401, 404, 503)}}},
        "/v1/conversations/{conversation_id}/items": {
            "get": {"summary": "A conversation's items", "parameters": [cid, *page_query],
                    "description": "Its items, paged by item id, in the form a response's "
                                   "input takes them.",
                    "responses": {"200": json_(ref("ResponseItemList"), "one page of items"),
                                  **errors(400, 401, 404, 503)}},
            "post": {"summary": "Add items", "parameters": [cid],
                     "description": f"Items appended, each given an id (at most {MAX_ITEMS} in a "
                                    "conversation).",
                     "requestBody": body("ConversationItemsRequest"),
                     "responses": {"200": json_(ref("ResponseItemList"), "the items added"),
                                   **errors(400, 401, 404, 413, 503)}}},
        "/v1/conversations/{conversation_id}/items/{item_id}": {
            "get": {"summary": "One item", "parameters": [cid, iid],
                    "description": "An item of the conversation.",
                    "responses": {"200": json_(ref("ResponseItem"), "the item"),
                                  **errors(401, 404, 503)}},
            "delete": {"summary": "Delete an item", "parameters": [cid, iid],
                       "description": "The item is gone; the conversation is returned.",
                       "responses": {"200": conv, **errors(401, 404, 503)}}},
    }
