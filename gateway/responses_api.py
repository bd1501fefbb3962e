"""POST /v1/responses: OpenAI's Responses API (what the OpenAI Agents SDK's default model,
OpenAIResponsesModel, calls), on the gateway's one call path: the request becomes the
chat-completions request it asks for (gateway/responses_format.py), placed and run as any
call; the answer is rendered as a response object or its streamed events
(gateway/responses_output.py).

A finished response is stored (cache/stored_responses.py) unless the request says
`"store": false`: `previous_response_id` continues it (its context and output come before
the new input, so the conversation index places the call in the same program, a child of
the call it continues), GET /v1/responses/<id> reads it, DELETE forgets it. Stored or
continued, a response is its tenant's only: another tenant's id is not found. Run with
`conversation` (cache/conversation_store.py), it is given the conversation's items before
its input, and its turn is added to the conversation once it has finished."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import structlog
from aiohttp import web
from multidict import MultiMapping

from cache.conversation_store import (
    MAX_ITEMS,
    ConversationStore,
    ConversationsUnavailable,
    TooManyConversations,
    TooManyItems,
)
from cache.conversations import Continuation
from cache.modes import REQUEST_HEADER
from cache.stored_responses import (
    BrokenChain,
    ChainTooLong,
    ResponsesUnavailable,
    StoredResponses,
)
from gateway.call_items import Delta
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.draining import told
from gateway.openai_format import BadRequest, call_from_openai
from gateway.openai_response import answer_headers, extension_json
from gateway.responses_format import (
    PRIOR,
    Sources,
    conversation_id,
    input_items,
    translate,
)
from gateway.responses_items import check_retrieve_query, listed_items, page
from gateway.responses_output import ResponseEvents, ResponseShell, output_json
from gateway.responses_truncation import oldest_droppable, without_oldest
from gateway.sse_stream import SseStream
from ostinato.v1 import common_pb2
from tracing import genai

# a chat field named in an error -> the Responses field the client sent (longest first)
_PARAMS = (("response_format.json_schema", "text.format"), ("response_format", "text"),
           ("max_completion_tokens", "max_output_tokens"), ("max_new_tokens", "max_output_tokens"),
           ("max_tokens", "max_output_tokens"), (".tool_call_id", ".call_id"),
           # the context window's messages (gateway/context_window.py): the input here
           ("your messages", "your input"), ("the messages", "the input"))


def _renamed(text: str | None, sources: Sources) -> str | None:
    if text is None:
        return None
    text = sources.rename(text)
    for chat_name, name in _PARAMS:
        text = text.replace(chat_name, name)
    # the chat names a message lists ("max_tokens, max_completion_tokens or max_new_tokens")
    # are one Responses name: said once
    return re.sub(r"\b([a-z_.]+)(?:(?:, | or )\1\b)+", r"\1", text)


def _top(param: str | None) -> str | None:
    """The request's top-level field a parameter path lies in ("text.format.schema": text;
    "messages", a chat message: input)."""
    if param is None:
        return None
    top = param.split(".")[0].split("[")[0]
    return "input" if top == "messages" else top


Place = Callable[[web.Request, str, common_pb2.CallSpec, Continuation | None],
                 Awaitable[Placement]]
Result = Callable[[str, Placement], Awaitable[common_pb2.CallResult]]
_T = TypeVar("_T")
log = structlog.get_logger(__name__)


def call_from_responses(body: Any, cache_header: str | None, prior: list[Any] | None = None,
                        drop: int = 0) -> tuple[common_pb2.CallSpec, Sources]:
    """A Responses request body as a CallSpec, and where its messages came from; raises
    BadRequest naming Responses fields. `prior`: the items of the turns it continues;
    `drop`: how many of the conversation's oldest messages truncation leaves out."""
    chat, sources = translate(body, prior or ())
    if drop:
        chat, sources = without_oldest(chat, sources, drop)
    try:
        return call_from_openai(chat, cache_header), sources
    except BadRequest as exc:
        raise BadRequest(_renamed(str(exc), sources) or "",
                         _top(_renamed(exc.param, sources))) from None


def _unavailable(exc: ResponsesUnavailable) -> GatewayError:
    log.warning("stored responses unavailable", error=str(exc))  # not to the caller
    return GatewayError(grpc.StatusCode.UNAVAILABLE,
                        "stored responses are unavailable (Redis); retry later")


@dataclass(frozen=True)
class _Prior:
    """What `previous_response_id` continues: its turns' items (inputs and outputs), its
    call (the new one's parent, in its program) and the new response's chain."""

    items: list[Any] = field(default_factory=list)
    call: Continuation | None = None
    chain: list[str] = field(default_factory=list)


async def _prior(stored: StoredResponses | None, space: str, body: Any) -> _Prior:
    previous = body.get(PRIOR) if isinstance(body, dict) else None
    if not isinstance(previous, str):
        return _Prior()  # none, or not a string: translate refuses it
    if stored is None:
        raise BadRequest(f"{PRIOR}: responses are not stored by this gateway (it has no "
                         "Redis); send the whole conversation as input", PRIOR)
    try:
        got = await stored.continued(space, previous)
    except ResponsesUnavailable as exc:
        raise _unavailable(exc) from None
    except BrokenChain as exc:
        raise BadRequest(str(exc), PRIOR, "previous_response_not_found") from None
    except ChainTooLong as exc:
        raise BadRequest(str(exc), PRIOR) from None
    call = got.call
    return _Prior(got.items, Continuation(call["program_id"], call["call_id"],
                                          call["thread_id"]), got.chain)


async def _in_conversation(conversations: ConversationStore | None, space: str,
                           body: Any) -> tuple[str | None, list[Any]]:
    """The conversation a request runs in and its items (oldest first), or (None, [])."""
    cid = conversation_id(body) if isinstance(body, dict) else None
    if cid is None:
        return None, []
    if conversations is None:
        raise BadRequest("conversation: conversations are not stored by this gateway (it "
                         "has no Redis)", "conversation")
    try:
        got = await conversations.ids(space, cid)
        if got is None:
            raise GatewayError(grpc.StatusCode.NOT_FOUND,
                               f"Conversation with id {cid!r} not found.", "conversation")
        if len(got[1]) + len(input_items(body)) + 1 > MAX_ITEMS:
            raise BadRequest(f"conversation {cid!r} would hold more than {MAX_ITEMS} items; "
                             "start a new one", "conversation")
        items = await conversations.items(space, cid, got[1])
    except ConversationsUnavailable as exc:
        log.warning("conversations unavailable", error=str(exc))  # not to the caller
        raise GatewayError(grpc.StatusCode.UNAVAILABLE,
                           "conversations are unavailable (Redis); retry later") from None
    return cid, [item for item in items if item is not None]


class _Keeper:
    """Stores a finished response when its request asked for it (and Redis is there), and
    adds its input and output to the conversation it runs in."""

    def __init__(self, stored: StoredResponses | None, space: str, body: Any,
                 prior: _Prior, conversation: tuple[ConversationStore, str] | None,
                 held: list[Any]) -> None:
        """`space`: the tenant's namespace (its name and generation): a tenant revoked and
        created again reaches nothing stored by the one before. `held`: the conversation's
        items the response ran after."""
        self.on = stored is not None and body.get("store") is not False
        self._stored, self._space, self._body, self._prior = stored, space, body, prior
        self._conversation, self._held = conversation, held

    async def keep(self, response: dict[str, Any], placed: Placement) -> None:
        """Stores a finished response; its `store` is false when it could not be (Redis
        down: the answer still reaches its client, which cannot continue it by id)."""
        if response["status"] not in ("completed", "incomplete"):
            return
        if self._conversation is not None:
            await self._add_to_conversation(*self._conversation, response)
        if self._stored is None or not self.on:
            return
        call = {"program_id": placed.program_id, "call_id": placed.call.call_id,
                "thread_id": placed.call.thread_id}
        # run in a conversation, its input is what it ran on (the conversation's items
        # then, and its own): a response continuing it by id runs on the same (review)
        if not await self._stored.put(self._space, response["id"],
                                      [*self._held, *input_items(self._body)],
                                      response, call, self._prior.chain):
            response["store"] = False

    async def _add_to_conversation(self, conversations: ConversationStore, cid: str,
                                   response: dict[str, Any]) -> None:
        """This turn's input and output appended. A turn that cannot be (Redis failing, the
        conversation full meanwhile) fails the response, so that the conversation never
        silently lacks a turn its client saw (the openai client retries a 503); one deleted
        meanwhile is its owner's doing: the answer is given, the turn logged as dropped."""
        turn = [*input_items(self._body), *_kept_output(response["output"])]
        try:
            added = await conversations.add(self._space, cid, turn)
        except ConversationsUnavailable as exc:
            log.warning("conversations unavailable", error=str(exc))  # not to the caller
            raise GatewayError(grpc.StatusCode.UNAVAILABLE,
                               f"the answer could not be added to conversation {cid!r} "
                               "(conversations are unavailable); send the request again",
                               "conversation") from None
        except TooManyItems as exc:  # items (or bytes) added meanwhile by another request
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"conversation {cid!r} is full ({exc}); start a new one",
                               "conversation") from None
        except TooManyConversations as exc:  # the tenant's conversations hold their max
            raise GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"the answer could not be added to conversation {cid!r}: {exc}",
                               "conversation", final=True) from None
        if added is None:
            log.warning("response not added to its conversation", conversation_id=cid,
                        response_id=response["id"], error="the conversation was deleted meanwhile")


async def respond(core: GatewayCore, request: web.Request, tenant: str, body: Any,
                  place: Place, result_of: Result, stored: StoredResponses | None = None,
                  conversations: ConversationStore | None = None) -> web.StreamResponse:
    """The response, or a GatewayError that names the Responses field at fault."""
    if isinstance(body, dict) and (body.get(PRIOR) is not None or body.get("conversation")
                                   is not None):
        call_from_responses(body, None)  # refused before any stored turn is read
    space = core.namespace(tenant)  # what its responses and conversations are stored under
    prior = await _prior(stored, space, body)
    cid, held = await _in_conversation(conversations, space, body)
    fitting = (core, body, request.headers.get(REQUEST_HEADER), prior.items or held)
    # truncation "auto" renders and tokenizes the conversation up to log2(its length) + 2
    # times (a long one, with a Hugging Face tokenizer, for tens of ms each): off the loop
    call, sources = await asyncio.to_thread(_fitted, *fitting) if isinstance(body, dict) and \
        body.get("truncation") == "auto" else _fitted(*fitting)
    keeper = _Keeper(stored, space, body, prior,
                     (conversations, cid) if conversations is not None and cid else None, held)
    try:
        placed = await place(request, tenant, call, prior.call)
        shell = ResponseShell(core.config.model, int(time.time()), body, store=keeper.on,
                              conversation=cid)
        genai.record_response_id(shell.id)  # on the request's span, as the other handlers do
        async with core.answering(tenant, placed, lambda: told(request)):
            if body.get("stream"):
                return await _Stream(core, request, tenant, placed, shell, keeper).run()
            result = await result_of(tenant, placed)
    except GatewayError as exc:
        raise GatewayError(exc.code, _renamed(exc.message, sources) or "",
                           _top(_renamed(exc.param, sources)), exc.retry_after_s,
                           exc.error_code) from None
    response = shell.json("completed", output_json(result), result,
                          extension_json(placed.client_program_id, placed.call, result))
    await keeper.keep(response, placed)
    return web.json_response(response,
                             headers=answer_headers(placed.client_program_id, result.cache_hit))


def _fitted(core: GatewayCore, body: Any, cache_header: str | None,
            prior: list[Any]) -> tuple[common_pb2.CallSpec, Sources]:
    """The call; with truncation "auto", as few of the conversation's oldest messages left
    out as make it fit the model's context window (OpenAI's rule: items dropped from the
    beginning), found by bisection over what the gateway tokenizes (nothing runs)."""
    call, sources = call_from_responses(body, cache_header, prior)
    if body.get("truncation") != "auto":
        return call, sources
    try:
        if core.fits(call):
            return call, sources
    except GatewayError:
        return call, sources  # refused as it is: the call's own run says why
    most = oldest_droppable(translate(body, prior)[0])

    def fits_without(k: int) -> bool:  # the k oldest messages left out
        return core.fits(call_from_responses(body, cache_header, prior, k)[0])

    low, high = 0, most  # low: known not to fit; high: known to fit
    if not fits_without(most):
        return call_from_responses(body, cache_header, prior, most)  # refused: the last alone
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if fits_without(mid) else (mid, high)
    return call_from_responses(body, cache_header, prior, high)


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.NOT_FOUND,
                        f"Response with id {response_id!r} not found.")


async def _stored(op: Awaitable[_T]) -> _T:
    """A stored responses operation; Redis down is UNAVAILABLE."""
    try:
        return await op
    except ResponsesUnavailable as exc:
        raise _unavailable(exc) from None


async def retrieve(stored: StoredResponses | None, space: str,
                   response_id: str, query: MultiMapping[str]) -> dict[str, Any]:
    """GET /v1/responses/<id>: the tenant's stored response object (`space`: its namespace)."""
    check_retrieve_query(query)
    record = await _stored(stored.get(space, response_id)) if stored is not None else None
    if record is None:
        raise _not_found(response_id)
    response: dict[str, Any] = record["response"]
    return response


async def list_input_items(stored: StoredResponses | None, space: str, response_id: str,
                           query: MultiMapping[str]) -> dict[str, Any]:
    """GET /v1/responses/<id>/input_items: the items it was generated from, one page."""
    if stored is None:
        raise _not_found(response_id)
    try:
        found = await _stored(stored.history(space, response_id))
    except ChainTooLong as exc:
        raise BadRequest(str(exc), "response_id") from None
    if found is None:
        raise _not_found(response_id)
    record, earlier = found
    return page(listed_items(response_id, record, earlier), query)


async def delete(stored: StoredResponses | None, space: str,
                 response_id: str) -> dict[str, Any]:
    """DELETE /v1/responses/<id>: forgets the tenant's stored response."""
    if stored is None or not await _stored(stored.delete(space, response_id)):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


class _Stream(SseStream):
    """One streamed response: OpenAI's events; a failure after the first is
    response.failed."""

    def __init__(self, core: GatewayCore, request: web.Request, tenant: str, placed: Placement,
                 shell: ResponseShell, keeper: _Keeper) -> None:
        super().__init__(core, request, tenant, placed)
        self._events = ResponseEvents(shell)
        self._keeper = keeper

    async def _send(self, response: web.StreamResponse,
                    first: Delta | common_pb2.CallResult) -> None:
        events = self._events
        pending = events.started()  # written with the first text: one write fewer
        item: Delta | common_pb2.CallResult | None = first
        try:
            while True:
                item = item if item is not None else await self._next()
                if isinstance(item, Delta):
                    if item.restart:
                        pending += events.restarted()
                    if item.reasoning:
                        pending += events.thinking(item.reasoning)
                    if item.text:  # (an empty answer's message opens when the call ends)
                        pending += events.text(item.text)
                    if not item.last:
                        await response.write(pending)
                        pending = b""
                    item = None
                    continue
                pending += events.finished(item, extension_json(
                    self._placed.client_program_id, self._placed.call, item))
                # stored before the client hears it is done: its next request may continue it
                assert events.final is not None
                await self._keeper.keep(events.final, self._placed)
                await response.write(pending + events.completed())
                return
        except StopAsyncIteration:
            await response.write(pending + events.failed(
                "INTERNAL", "the call ended without a result"))
        except GatewayError as exc:  # headers are gone: the error travels in the stream
            await response.write(pending + events.failed(exc.code.name, exc.message))


def _kept_output(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The response's output items as a conversation keeps them (as input would be), under
    the ids the response gave them: a client finds its answer in the conversation by its id
    (HTTP API review 2026-12-05 F3: they were stored under new ones). Reasoning is dropped."""
    kept = []
    for item in output:
        for converted in input_items({"input": [item]}):
            kept.append({**converted, "id": item["id"]} if item.get("id") else converted)
    return kept
